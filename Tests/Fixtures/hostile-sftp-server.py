#!/usr/bin/env python3
"""A hostile SFTP server for the tests: sshd runs it as the sftp subsystem. It answers honestly
(a file "f" of 100 bytes, a directory ".") until the request the mode names, which it answers
in a way that breaks the protocol. The mode is read from the file named by argv[1] at start.

Modes: huge-length, name-count, unknown-id, short-string, bad-type, truncated-close, big-data,
bad-version, silent-close, handle-too-long, attrs-count, stall, honest."""
import os, signal, struct, sys

mode = open(sys.argv[1]).read().strip() if len(sys.argv) > 1 else "honest"
inp, out = sys.stdin.buffer, sys.stdout.buffer

def read_exact(n):
    b = b""
    while len(b) < n:
        c = inp.read(n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b

def send(raw):
    out.write(raw)
    out.flush()

def pkt(t, rid, body):
    p = bytes([t]) + (struct.pack(">I", rid) if rid is not None else b"") + body
    return struct.pack(">I", len(p)) + p

def s(b):
    return struct.pack(">I", len(b)) + b

FILE_ATTRS = struct.pack(">IQI", 0x1 | 0x4, 100, 0o100644)
DIR_ATTRS = struct.pack(">II", 0x4, 0o040755)

def honest(t, rid, body):
    if t in (7, 17):  # LSTAT, STAT
        path = body[4:4 + struct.unpack(">I", body[:4])[0]]
        if path in (b"f",) or path.endswith(b"/f"):
            return pkt(105, rid, FILE_ATTRS)
        if path in (b".", b"/"):
            return pkt(105, rid, DIR_ATTRS)
        return pkt(101, rid, struct.pack(">I", 2) + s(b"no such file") + s(b""))
    if t == 16:  # REALPATH
        return pkt(104, rid, struct.pack(">I", 1) + s(b"/") + s(b"/") + DIR_ATTRS)
    if t in (3, 11):  # OPEN, OPENDIR
        return pkt(102, rid, s(b"h"))
    if t == 5:  # READ
        off, n = struct.unpack(">QI", body[-12:])
        if off >= 100:
            return pkt(101, rid, struct.pack(">I", 1) + s(b"eof") + s(b""))
        return pkt(103, rid, s(b"x" * min(n, 100 - off)))
    if t == 12:  # READDIR: one entry, then EOF
        global listed
        if listed:
            return pkt(101, rid, struct.pack(">I", 1) + s(b"eof") + s(b""))
        listed = True
        return pkt(104, rid, struct.pack(">I", 1) + s(b"f") + s(b"-rw-r--r-- f") + FILE_ATTRS)
    return pkt(101, rid, struct.pack(">I", 0) + s(b"ok") + s(b""))

listed = False
length = struct.unpack(">I", read_exact(4))[0]
read_exact(length)  # INIT
if mode == "silent-close":
    sys.exit(0)
if mode == "bad-version":
    send(pkt(2, None, struct.pack(">I", 3) + struct.pack(">I", 1000) + b"posix"))
else:
    send(pkt(2, None, struct.pack(">I", 3)))

for _ in range(100000):
    length = struct.unpack(">I", read_exact(4))[0]
    body = read_exact(length)
    t, rid, rest = body[0], struct.unpack(">I", body[1:5])[0], body[5:]
    target = (t == 5) if mode == "big-data" else True
    if not target or mode == "honest":
        send(honest(t, rid, rest))
        continue
    if mode == "huge-length":
        send(struct.pack(">I", 0x7FFFFFFF) + bytes([101]) + struct.pack(">I", rid))
    elif mode == "name-count":
        send(pkt(104, rid, struct.pack(">I", 0x7FFFFFFF) + s(b"a")))
    elif mode == "unknown-id":
        send(pkt(101, rid + 1000, struct.pack(">I", 0) + s(b"") + s(b"")))
    elif mode == "short-string":
        send(pkt(104, rid, struct.pack(">I", 1) + struct.pack(">I", 1 << 30) + b"abc"))
    elif mode == "bad-type":
        send(pkt(99, rid, b"\x00" * 8))
    elif mode == "truncated-close":
        send(struct.pack(">I", 200) + bytes([105]) + struct.pack(">I", rid))
        sys.exit(0)
    elif mode == "big-data":
        send(pkt(103, rid, s(b"y" * (4 << 20))))
    elif mode == "handle-too-long":
        send(pkt(102, rid, s(b"h" * 10000)))
    elif mode == "attrs-count":
        send(pkt(105, rid, struct.pack(">I", 0x80000000) + struct.pack(">I", 0x7FFFFFFF)))
    elif mode == "stall":
        # Never answers; ends when the client goes (stdin closes), at the latest after 120 s.
        signal.alarm(120)
        while inp.read(65536):
            pass
        sys.exit(0)
    else:
        send(honest(t, rid, rest))
