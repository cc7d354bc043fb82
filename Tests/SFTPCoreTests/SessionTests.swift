import Foundation
import SFTPCore
import Testing
import TestSupport

/// SFTPCore against the real test sshd.
struct SessionTests {
    let server = TestServer.shared

    func options(_ f: (inout ConnectOptions) -> Void = { _ in }) -> ConnectOptions {
        var o = ConnectOptions(host: server.host)
        o.port = server.port
        o.home = server.home
        o.knownHosts = server.knownHosts
        f(&o)
        return o
    }

    func expectKind(_ kind: SSHError.Kind, _ body: () throws -> Void) {
        do { try body(); Issue.record("expected \(kind.rawValue)") } catch let e as KindedError {
            #expect(e.kind == kind, "\(e)")
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func connectsWithTheDefaultIdentityAndLists() throws {
        let s = try Session(options())
        #expect(s.authMethod.contains("id_ed25519"))
        #expect(s.activeMethod(2) == "aes128-ctr")
        let sftp = try SFTP(session: s)
        let dir = try server.makeRemoteDir()
        try "hi".write(toFile: dir + "/a", atomically: true, encoding: .utf8)
        #expect(try sftp.list(dir).map(\.name) == ["a"])
        s.close()
        s.close() // twice is harmless
        expectKind(.connection) { _ = try sftp.list(dir) }
    }

    @Test func refusedPortIsAConnectionError() throws {
        expectKind(.connection) { _ = try Session(options { $0.port = 1 }) }
    }

    @Test func unknownHostUnderStrictIsRefusedAndAcceptNewRecordsIt() throws {
        let dir = try makeTempDir("kh")
        let kh = dir + "/.ssh/known_hosts"
        expectKind(.hostKey) { _ = try Session(options { $0.knownHosts = kh; $0.hostKeyPolicy = .strict }) }
        #expect(!FileManager.default.fileExists(atPath: kh))
        _ = try Session(options { $0.knownHosts = kh })
        let text = try String(contentsOfFile: kh, encoding: .utf8)
        #expect(text.hasPrefix("[127.0.0.1]:\(server.port) ssh-ed25519 "))
        _ = try Session(options { $0.knownHosts = kh; $0.hostKeyPolicy = .strict })
    }

    @Test func changedHostKeyIsRefusedEvenWithAcceptNew() throws {
        let dir = try makeTempDir("kh")
        let kh = dir + "/known_hosts"
        let fake = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        try "[127.0.0.1]:\(server.port) ssh-ed25519 \(fake)\n".write(toFile: kh, atomically: true, encoding: .utf8)
        do { _ = try Session(options { $0.knownHosts = kh }); Issue.record("connected") } catch let e as SSHError {
            #expect(e.kind == .hostKey)
            #expect(e.message.contains("CHANGED"))
        }
        _ = try Session(options { $0.knownHosts = kh; $0.hostKeyPolicy = .off })
    }

    /// Known by its ECDSA key only: sftplua asks the server for ECDSA (not ed25519) and matches.
    @Test func asksForTheHostKeyTypeKnownHostsHas() throws {
        let dir = try makeTempDir("kh")
        let kh = dir + "/known_hosts"
        let pub = try String(contentsOfFile: server.dir + "/server/host_ecdsa.pub", encoding: .utf8).split(separator: " ")
        // Hashed, as many distributions write known_hosts.
        try "[127.0.0.1]:\(server.port) \(pub[0]) \(pub[1])\n".write(toFile: kh, atomically: true, encoding: .utf8)
        _ = try runProcess("/usr/bin/ssh-keygen", ["-H", "-f", kh])
        let s = try Session(options { $0.knownHosts = kh; $0.hostKeyPolicy = .strict })
        #expect(s.hostKeyType.hasPrefix("ecdsa-sha2"))
    }

    @Test func keyTypesAndPassphrases() throws {
        for name in ["ecdsa", "ed25519_pass"] {
            let s = try Session(options {
                $0.privateKey = server.keys + "/" + name
                $0.privateKeyPass = name.hasSuffix("_pass") ? "sekret-phrase" : nil
            })
            #expect(s.authMethod.contains(name))
        }
        expectKind(.credential) { _ = try Session(options { $0.privateKey = server.keys + "/ed25519_pass" }) }
        expectKind(.credential) { _ = try Session(options { $0.privateKey = server.keys + "/ed25519_pass"; $0.privateKeyPass = "wrong" }) }
        expectKind(.credential) { _ = try Session(options { $0.privateKey = server.keys + "/missing" }) }
        expectKind(.authentication) { _ = try Session(options { $0.privateKey = server.keys + "/unauthorized" }) }
    }

    /// OpenSSH 8.8+ refuses ssh-rsa signatures, the only kind libssh2 1.10 makes: the error says so.
    @Test func rsaKeyRefusalExplainsRsaSha2() throws {
        do {
            _ = try Session(options { $0.privateKey = server.keys + "/rsa" })
            // A libssh2 that signs rsa-sha2 logs in: also fine.
        } catch let e as SSHError {
            #expect(e.kind == .authentication)
            #expect(e.message.contains("rsa-sha2"))
            #expect(e.message.contains("ed25519"))
        }
    }

    @Test(.enabled(if: TestServer.shared.passwordUser != nil, "needs the password account that scripts/setup creates as root"))
    func passwordLogin() throws {
        let user = try #require(server.passwordUser)
        let s = try Session(options { $0.username = user; $0.password = server.password })
        #expect(s.authMethod == "password")
        expectKind(.authentication) { _ = try Session(options { $0.username = user; $0.password = "nope" }) }
    }

    @Test func noCredentialAtAll() throws {
        let home = try makeTempDir("emptyhome")
        expectKind(.credential) { _ = try Session(options { $0.home = home }) }
    }

    @Test func atomicTransfersRoundTrip() throws {
        let s = try Session(options())
        let sftp = try SFTP(session: s)
        let dir = try server.makeRemoteDir()
        let local = try makeTempDir("xfer")
        var bytes = [UInt8](repeating: 0, count: 5_000_003)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 8) }
        try Data(bytes).write(to: URL(fileURLWithPath: local + "/big"))
        var calls = 0
        let a = try Transfer.upload(Channels(sftp), TransferJob(.upload, remote: dir + "/big", local: local + "/big"), progress: { _, _ in calls += 1 })
        #expect(a.size == 5_000_003)
        #expect(calls >= 2)
        try Transfer.download(Channels(sftp), TransferJob(.download, remote: dir + "/big", local: local + "/back"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: local + "/back")) == Data(bytes))
        // No temp files left on either side.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["big"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: local).sorted() == ["back", "big"])
        // A failed download leaves the good local file as it was.
        try "good".write(toFile: local + "/keep", atomically: true, encoding: .utf8)
        expectKind(.fileNotFound) { try Transfer.download(Channels(sftp), TransferJob(.download, remote: dir + "/missing", local: local + "/keep")) }
        #expect(try String(contentsOfFile: local + "/keep", encoding: .utf8) == "good")
    }
}

extension SessionTests {
    /// A server that accepts the TCP connection but never speaks: `timeout` raises Timeout.
    @Test func silentServerTimesOut() throws {
        let (fd, port) = try loopbackSocket(listening: true)
        defer { close(fd) }
        let start = Date()
        expectKind(.timeout) { _ = try Session(options { $0.port = port; $0.timeout = 1 }) }
        #expect(Date().timeIntervalSince(start) < 30)
        // Through the binary: kind Timeout, exit code 3.
        let r = try server.runScript("sftp.connect{host = '127.0.0.1', port = \(port), timeout = 1}")
        #expect(r.status == 3)
        #expect(r.stderr.contains("Timeout: "))
    }
}
