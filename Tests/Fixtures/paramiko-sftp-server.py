#!/usr/bin/env python3
"""A paramiko SFTP server for the server matrix (ServerMatrixTests), in the shape of paramiko's
own StubSFTPServer: the local file system through paramiko's SFTPServerInterface, as servers
built on paramiko do. 127.0.0.1 only, a free port, public-key login with the test identity, no
shell or exec. Prints its port on the first line; serves until killed or the watched process ends.

Usage: paramiko-sftp-server.py HOST_KEY AUTHORIZED_KEYS WATCH_PID"""
import os, socket, sys, threading, time

import paramiko
from paramiko import SFTPAttributes, SFTPHandle, SFTPServer, SFTPServerInterface
from paramiko.sftp import SFTP_OK


def errno_status(e):
    return SFTPServer.convert_errno(e.errno)


class Handle(SFTPHandle):
    def stat(self):
        try:
            return SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))
        except OSError as e:
            return errno_status(e)

    def chattr(self, attr):
        try:
            SFTPServer.set_file_attr(self.filename, attr)
            return SFTP_OK
        except OSError as e:
            return errno_status(e)


class FileSystem(SFTPServerInterface):
    def canonicalize(self, path):
        return os.path.normpath(path if os.path.isabs(path) else os.path.join(os.path.expanduser("~"), path))

    def list_folder(self, path):
        try:
            out = []
            for name in os.listdir(path):
                attr = SFTPAttributes.from_stat(os.lstat(os.path.join(path, name)))
                attr.filename = name
                out.append(attr)
            return out
        except OSError as e:
            return errno_status(e)

    def stat(self, path):
        try:
            return SFTPAttributes.from_stat(os.stat(path))
        except OSError as e:
            return errno_status(e)

    def lstat(self, path):
        try:
            return SFTPAttributes.from_stat(os.lstat(path))
        except OSError as e:
            return errno_status(e)

    def open(self, path, flags, attr):
        binary = getattr(os, "O_BINARY", 0)
        try:
            mode = getattr(attr, "st_mode", None) or 0o666
            fd = os.open(path, flags | binary, mode)
        except OSError as e:
            return errno_status(e)
        if flags & os.O_CREAT and attr is not None:
            attr._flags &= ~attr.FLAG_PERMISSIONS
            SFTPServer.set_file_attr(path, attr)
        if flags & os.O_WRONLY:
            fstr = "ab" if flags & os.O_APPEND else "wb"
        elif flags & os.O_RDWR:
            fstr = "a+b" if flags & os.O_APPEND else "r+b"
        else:
            fstr = "rb"
        try:
            f = os.fdopen(fd, fstr)
        except OSError as e:
            return errno_status(e)
        h = Handle(flags)
        h.filename = path
        h.readfile = f
        h.writefile = f
        return h

    def remove(self, path):
        try:
            os.remove(path)
        except OSError as e:
            return errno_status(e)
        return SFTP_OK

    def rename(self, oldpath, newpath):
        try:
            os.rename(oldpath, newpath)   # as StubSFTPServer: replaces an existing target
        except OSError as e:
            return errno_status(e)
        return SFTP_OK

    def posix_rename(self, oldpath, newpath):
        return self.rename(oldpath, newpath)

    def mkdir(self, path, attr):
        try:
            os.mkdir(path)
            if attr is not None:
                SFTPServer.set_file_attr(path, attr)
        except OSError as e:
            return errno_status(e)
        return SFTP_OK

    def rmdir(self, path):
        try:
            os.rmdir(path)
        except OSError as e:
            return errno_status(e)
        return SFTP_OK

    def chattr(self, path, attr):
        try:
            SFTPServer.set_file_attr(path, attr)
        except OSError as e:
            return errno_status(e)
        return SFTP_OK

    def symlink(self, target_path, path):
        try:
            os.symlink(target_path, path)
        except OSError as e:
            return errno_status(e)
        return SFTP_OK

    def readlink(self, path):
        try:
            return os.readlink(path)
        except OSError as e:
            return errno_status(e)


class Server(paramiko.ServerInterface):
    def __init__(self, keys):
        self.keys = keys

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL if key.get_base64() in self.keys else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username):
        return "publickey"

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        return False


def serve(conn, host_key, keys):
    t = paramiko.Transport(conn)
    t.add_server_key(host_key)
    t.set_subsystem_handler("sftp", SFTPServer, FileSystem)
    try:
        t.start_server(server=Server(keys))
        while t.is_active():
            time.sleep(0.2)
    except Exception:
        pass


def main():
    host_key = paramiko.Ed25519Key.from_private_key_file(sys.argv[1])
    keys = {line.split()[1] for line in open(sys.argv[2]) if len(line.split()) > 1}
    watch = int(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.settimeout(0.2)
    print(sock.getsockname()[1], flush=True)
    for _ in range(86400 * 5):   # bounded: a day at most
        try:
            os.kill(watch, 0)
        except OSError:
            break
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn, host_key, keys), daemon=True).start()


main()
