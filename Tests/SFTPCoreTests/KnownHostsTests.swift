import Foundation
import SFTPCore
import Testing
import TestSupport

struct KnownHostsTests {
    let key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    let other = "AAAAC3NzaC1lZDI1NTE5AAAAIBBBqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

    @Test func plainPortAndWildcardEntries() {
        let kh = KnownHosts(text: """
        # comment
        example.com,alias.example.com ssh-ed25519 \(key)
        [127.0.0.1]:2222 ecdsa-sha2-nistp256 \(other)
        *.internal,!bad.internal ssh-ed25519 \(key)
        """)
        #expect(kh.check(host: "example.com", port: 22, keyType: "ssh-ed25519", key: key) == .match)
        #expect(kh.check(host: "example.com", port: 2222, keyType: "ssh-ed25519", key: key) == .unknown)
        #expect(kh.keyTypes(host: "127.0.0.1", port: 2222) == ["ecdsa-sha2-nistp256"])
        #expect(kh.check(host: "127.0.0.1", port: 2222, keyType: "ecdsa-sha2-nistp256", key: key) == .changed(knownTypes: ["ecdsa-sha2-nistp256"]))
        #expect(kh.check(host: "a.internal", port: 22, keyType: "ssh-ed25519", key: key) == .match)
        #expect(kh.check(host: "bad.internal", port: 22, keyType: "ssh-ed25519", key: key) == .unknown)
    }

    @Test func revokedKeysAreRefused() {
        let kh = KnownHosts(text: "@revoked * ssh-ed25519 \(key)\nhost ssh-ed25519 \(key)\n")
        #expect(kh.check(host: "host", port: 22, keyType: "ssh-ed25519", key: key) == .revoked)
    }

    /// Hashed entries written by OpenSSH's own `ssh-keygen -H` are found.
    @Test func hashedEntriesFromSshKeygen() throws {
        let dir = try makeTempDir("kh")
        let path = dir + "/known_hosts"
        try "[127.0.0.1]:2200 ssh-ed25519 \(key)\nplain.example ssh-ed25519 \(other)\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runProcess("/usr/bin/ssh-keygen", ["-H", "-f", path])
        #expect(r.status == 0)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.contains("|1|"))
        #expect(!text.contains("plain.example"))
        let kh = try KnownHosts(path: path)
        #expect(kh.check(host: "127.0.0.1", port: 2200, keyType: "ssh-ed25519", key: key) == .match)
        #expect(kh.check(host: "plain.example", port: 22, keyType: "ssh-ed25519", key: other) == .match)
        #expect(kh.check(host: "127.0.0.1", port: 22, keyType: "ssh-ed25519", key: key) == .unknown)
    }

    @Test func appendWritesOpenSSHFormat() throws {
        let dir = try makeTempDir("kh")
        let path = dir + "/sub/known_hosts"
        try KnownHosts.append(path: path, host: "127.0.0.1", port: 2201, keyType: "ssh-ed25519", key: key)
        try KnownHosts.append(path: path, host: "h", port: 22, keyType: "ssh-ed25519", key: other)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "[127.0.0.1]:2201 ssh-ed25519 \(key)\nh ssh-ed25519 \(other)\n")
        // OpenSSH reads it back.
        let r = try runProcess("/usr/bin/ssh-keygen", ["-F", "[127.0.0.1]:2201", "-f", path])
        #expect(r.stdout.contains(key))
    }

    /// A known_hosts that cannot be written is a local failure: a `LocalError` with the errno,
    /// of the kind users have always seen (HostKeyError), never an `SSHError`.
    @Test func appendFailuresAreLocalErrorsWithTheErrno() throws {
        let dir = try makeTempDir("khfail")
        FileManager.default.createFile(atPath: dir + "/file", contents: Data())
        let cases: [(String, Int32)] = [(dir + "/file/sub/known_hosts", ENOTDIR), (dir, EISDIR)]
        for (path, want) in cases {
            do {
                try KnownHosts.append(path: path, host: "h", port: 22, keyType: "ssh-ed25519", key: key)
                Issue.record("\(path): no error")
            } catch let e as LocalError {
                #expect(e.kind == .hostKey)
                #expect(e.number == Int(want), "\(e)")
                #expect(e.message.contains("record the host key"), "\(e)")
            } catch {
                Issue.record("\(path): \(error) is not a LocalError")
            }
        }
        // Made with its missing parents.
        try KnownHosts.append(path: dir + "/a/b/known_hosts", host: "h", port: 22, keyType: "ssh-ed25519", key: key)
        #expect(FileManager.default.fileExists(atPath: dir + "/a/b/known_hosts"))
    }

    @Test func privateKeyInfoOfGeneratedKeys() throws {
        let dir = try makeTempDir("keys")
        for (type, pass, wantType) in [("ed25519", "", "ssh-ed25519"), ("ed25519", "pw", "ssh-ed25519"), ("ecdsa", "", "ecdsa-sha2-nistp256"), ("rsa", "", "ssh-rsa")] {
            let path = "\(dir)/\(type)\(pass)"
            #expect(try runProcess("/usr/bin/ssh-keygen", ["-q", "-t", type, "-N", pass, "-f", path]).status == 0)
            let info = try PrivateKeyInfo(path: path)
            #expect(info.type == wantType)
            #expect(info.encrypted == !pass.isEmpty)
        }
        #expect(throws: LocalError.self) { try PrivateKeyInfo(path: dir + "/missing") }
        do { _ = try PrivateKeyInfo(path: dir + "/missing") } catch let e as LocalError { #expect(e.kind == .credential) }
        // A file that is not a key: a local failure too (kind CredentialError, message unchanged).
        FileManager.default.createFile(atPath: dir + "/notakey", contents: Data("hello\n".utf8))
        FileManager.default.createFile(atPath: dir + "/badopenssh", contents: Data("-----BEGIN OPENSSH PRIVATE KEY-----\n!!!\n-----END OPENSSH PRIVATE KEY-----\n".utf8))
        for (name, want) in [("notakey", "is not a private key file"), ("badopenssh", "is not a valid OpenSSH key")] {
            do { _ = try PrivateKeyInfo(path: dir + "/" + name); Issue.record("\(name): no error") } catch let e as LocalError {
                #expect(e.kind == .credential)
                #expect(e.message.contains(want), "\(e)")
            } catch { Issue.record("\(name): \(error) is not a LocalError") }
        }
    }
}
