import CLibssh2
import Foundation

/// Why a key exchange failed, in words a user can act on. libssh2 only says "Unable to exchange
/// encryption keys"; this reads the server's own KEXINIT (a second, short connection: the
/// banner, then the first packet, which is never encrypted) and compares the algorithms it
/// offers with those this build's libssh2 supports.
enum KexProbe {
    struct Offer { var kex: [String]; var hostKeys: [String]; var ciphers: [String]; var macs: [String] }

    /// The server's offer, or nil when it cannot be read within `timeout` seconds.
    static func offer(host: String, port: Int, timeout: Double = 5) -> Offer? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else { return nil }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 else { return nil }
        let banner = "SSH-2.0-sftplua_probe\r\n"
        _ = banner.withCString { send(fd, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        // Identification lines (the server may send others first), then one binary packet.
        var rounds = 0
        while rounds < 64, data.count < 64 << 10 {
            rounds += 1
            if let payload = packetAfterBanner(data) { return parse(payload) }
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { return nil }
            data += buf[0..<n]
        }
        return nil
    }

    /// The first binary packet's payload, once the identification line and the whole packet are in.
    static func packetAfterBanner(_ d: [UInt8]) -> ArraySlice<UInt8>? {
        var start = 0
        while let nl = d[start...].firstIndex(of: 0x0A) {
            let line = d[start..<nl]
            start = nl + 1
            if line.starts(with: Array("SSH-".utf8)) {
                guard d.count - start >= 5 else { return nil }
                let len = Int(d[start]) << 24 | Int(d[start + 1]) << 16 | Int(d[start + 2]) << 8 | Int(d[start + 3])
                guard len >= 2, len < 35000, d.count - start >= 4 + len else { return nil }
                let pad = Int(d[start + 4])
                guard pad < len else { return nil }
                return d[(start + 5)..<(start + 4 + len - pad)]
            }
        }
        return nil
    }

    static func parse(_ p: ArraySlice<UInt8>) -> Offer? {
        var r = WireReader(p)
        guard (try? r.u8()) == 20 else { return nil }   // SSH_MSG_KEXINIT
        for _ in 0..<16 { _ = try? r.u8() }
        var lists: [[String]] = []
        for _ in 0..<6 {
            guard let s = try? r.stringSlice(limit: 8192) else { return nil }
            lists.append(String(decoding: s, as: UTF8.self).split(separator: ",").map(String.init))
        }
        return Offer(kex: lists[0], hostKeys: lists[1], ciphers: lists[2], macs: lists[4])
    }

    /// A sentence for the error of a failed handshake: what is missing on which side, and what to do.
    static func explain(host: String, port: Int) -> String? {
        guard let o = offer(host: host, port: port) else { return nil }
        let mine = (kex: Session.supported(LIBSSH2_METHOD_KEX), hostKeys: Session.supported(LIBSSH2_METHOD_HOSTKEY),
                    ciphers: Session.supported(LIBSSH2_METHOD_CRYPT_CS), macs: Session.supported(LIBSSH2_METHOD_MAC_CS))
        var parts: [String] = []
        func check(_ what: String, _ theirs: [String], _ ours: [String], _ advice: String) {
            if !theirs.contains(where: ours.contains) {
                parts.append("no \(what) in common: the server offers \(theirs.joined(separator: ", ")); this build (libssh2 \(String(cString: libssh2_version(0)))) supports \(ours.joined(separator: ", ")). \(advice)")
            }
        }
        let rsaOnly = !o.hostKeys.isEmpty && o.hostKeys.allSatisfy { $0.hasPrefix("rsa-sha2") }
        check("host key algorithm", o.hostKeys, mine.hostKeys,
              rsaOnly ? "The server's only host key is RSA and it refuses ssh-rsa (SHA-1) signatures, the only ones libssh2 1.10 checks: give the server an ed25519 or ECDSA host key (HostKey), or allow ssh-rsa (HostKeyAlgorithms +ssh-rsa)."
                      : "Give the server an ed25519 or ECDSA host key.")
        check("cipher", o.ciphers, mine.ciphers,
              "Enable one of these on the server (e.g. Ciphers +aes128-ctr in sshd_config); chacha20-poly1305 alone is not enough for libssh2 1.10.")
        check("key exchange", o.kex, mine.kex, "Enable one of these on the server (KexAlgorithms).")
        check("MAC", o.macs, mine.macs, "Enable one of these on the server (MACs).")
        return parts.isEmpty ? nil : parts.joined(separator: " ")
    }
}
