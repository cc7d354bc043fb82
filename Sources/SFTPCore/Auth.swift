import CLibssh2
import Foundation

/// What a private key file is, read without decrypting it.
public struct PrivateKeyInfo: Equatable {
    public var type: String        // "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "rsa", "ec", "unknown"
    public var encrypted: Bool

    public var isRSA: Bool { type == "ssh-rsa" || type == "rsa" }

    /// Inspects the key file at `path`. Missing, unreadable or not a key: a `LocalError` (the
    /// errno where the system gave one) of kind CredentialError.
    public init(path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
            throw LocalError(.credential, "private key file \(path) does not exist", path: path, errno: ENOENT)
        }
        guard access(path, R_OK) == 0, let data = FileManager.default.contents(atPath: path) else {
            let err = errno
            throw LocalError(.credential, "private key file \(path) cannot be read: \(String(cString: strerror(err)))", path: path, errno: err)
        }
        try self.init(text: String(decoding: data, as: UTF8.self), path: path)
    }

    public init(text: String, path: String = "key") throws {
        if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let body = text.components(separatedBy: "\n")
                .filter { !$0.hasPrefix("-----") }
                .joined().trimmingCharacters(in: .whitespacesAndNewlines)
            guard let blob = Data(base64Encoded: body) else {
                throw LocalError(.credential, "private key file \(path) is not a valid OpenSSH key", path: path)
            }
            var r = SSHReader(data: [UInt8](blob))
            guard r.bytes(15) == Array("openssh-key-v1\0".utf8),
                  let cipher = r.string(), r.string() != nil, r.string() != nil,
                  r.uint32() != nil, let pub = r.string() else {
                throw LocalError(.credential, "private key file \(path) is not a valid OpenSSH key", path: path)
            }
            var pr = SSHReader(data: pub)
            type = pr.string().map { String(decoding: $0, as: UTF8.self) } ?? "unknown"
            encrypted = String(decoding: cipher, as: UTF8.self) != "none"
        } else if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
            type = "ssh-rsa"; encrypted = text.contains("ENCRYPTED")
        } else if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            type = "ecdsa"; encrypted = text.contains("ENCRYPTED")
        } else if text.contains("-----BEGIN DSA PRIVATE KEY-----") {
            type = "ssh-dss"; encrypted = text.contains("ENCRYPTED")
        } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            type = "unknown"; encrypted = true
        } else if text.contains("-----BEGIN PRIVATE KEY-----") {
            type = "unknown"; encrypted = false
        } else {
            throw LocalError(.credential, "\(path) is not a private key file (no PEM or OpenSSH header)", path: path)
        }
    }
}

/// Reads SSH wire-format fields.
struct SSHReader {
    var data: [UInt8]
    var pos = 0
    mutating func bytes(_ n: Int) -> [UInt8]? {
        guard n >= 0, pos + n <= data.count else { return nil }
        defer { pos += n }
        return Array(data[pos..<pos + n])
    }
    mutating func uint32() -> UInt32? {
        guard let b = bytes(4) else { return nil }
        return UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])
    }
    mutating func string() -> [UInt8]? {
        guard let n = uint32(), n < 1 << 24 else { return nil }
        return bytes(Int(n))
    }
}

let rsaNote = "Note: this libssh2 (1.10) signs RSA keys only with ssh-rsa (SHA-1), which OpenSSH 8.8+ servers refuse by default (they require rsa-sha2-256/512); use an ed25519 key instead (ssh-keygen -t ed25519), or enable ssh-rsa on the server (PubkeyAcceptedAlgorithms +ssh-rsa)."

extension Session {
    /// Authenticates as options.user with, in order: the named private key, the password,
    /// and, when neither is given, ssh-agent and the default identities in ~/.ssh.
    func authenticate() throws {
        let s = try handle()
        let user = options.user
        guard let methods = try acceptedAuthMethods(s, user: user) else { return }
        var attempt = AuthAttempt(s: s, user: user, methods: methods)
        if let key = options.privateKey {
            if try tryKeyFile(options.expand(key), passphrase: options.privateKeyPass, named: true, &attempt) { return }
        }
        if let password = options.password {
            if try tryPassword(password, &attempt) { return }
        }
        if options.privateKey == nil && options.password == nil {
            if try tryDefaultIdentities(&attempt) { return }
        }
        throw authenticationRefused(attempt)
    }

    /// One login under way: the session, who logs in, what the server accepts, and what was
    /// tried and refused so far (`rsaRefused`: an RSA key among them, for the note on SHA-1).
    private struct AuthAttempt {
        let s: OpaquePointer
        let user: String
        var ulen: UInt32 { UInt32(user.utf8.count) }
        let methods: [String]
        var tried: [String] = []
        var rsaRefused = false
    }

    /// The methods the server accepts for `user`; nil when asking them already logged in
    /// (the server took "none").
    private func acceptedAuthMethods(_ s: OpaquePointer, user: String) throws -> [String]? {
        // Ask which methods the server accepts (this may also authenticate with "none").
        let listPtr = libssh2_userauth_list(s, user, UInt32(user.utf8.count))
        if libssh2_userauth_authenticated(s) != 0 {
            authMethod = "none"
            log("authenticated as \(user) with no credential (none)")
            return nil
        }
        guard let listPtr else {
            let rc = libssh2_session_last_errno(s)
            throw error(rc, "asking \(options.host) for authentication methods")
        }
        let methods = String(cString: listPtr).split(separator: ",").map(String.init)
        log("server accepts: \(methods.joined(separator: ", "))")
        return methods
    }

    /// Tries the private key file at `path`. A `named` key (the caller's) that cannot be used
    /// is an error; a default identity that cannot is skipped. True when it was accepted.
    private func tryKeyFile(_ path: String, passphrase: String?, named: Bool, _ a: inout AuthAttempt) throws -> Bool {
        let info: PrivateKeyInfo
        do { info = try PrivateKeyInfo(path: path) } catch { if named { throw error } else { return false } }
        if info.encrypted && passphrase == nil {
            if named {
                throw SSHError(.credential, "private key \(path) is encrypted: give its passphrase as private_key_pass", path: path)
            }
            log("skipping encrypted default identity \(path) (no private_key_pass)")
            return false
        }
        guard a.methods.contains("publickey") else { return false }
        let rc = libssh2_userauth_publickey_fromfile_ex(a.s, a.user, a.ulen, nil, path, passphrase)
        if rc == 0 {
            authMethod = "publickey (\(path))"
            log("authenticated as \(a.user) with publickey \(path)")
            return true
        }
        if let failure = keyFileFailure(rc, path: path, info: info) { throw failure }
        if info.isRSA { a.rsaRefused = true }
        a.tried.append("publickey \(path)")
        return false
    }

    /// A key's refusal that ends the login: a key that cannot be read or decrypted, or the
    /// connection failing; nil when the server merely did not accept the key.
    private func keyFileFailure(_ rc: Int32, path: String, info: PrivateKeyInfo) -> SSHError? {
        if rc == LIBSSH2_ERROR_FILE || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED && info.encrypted {
            let detail = error(rc, "").message
            if info.encrypted {
                return SSHError(.credential, "cannot decrypt private key \(path): wrong passphrase (\(detail.trimmingCharacters(in: CharacterSet(charactersIn: ": "))))", path: path)
            }
            return SSHError(.credential, "cannot use private key \(path): unreadable or unsupported format", path: path)
        }
        if rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT {
            return error(rc, "authenticating with \(path)")
        }
        return nil
    }

    /// Tries the password as "password", then through "keyboard-interactive", each where the
    /// server accepts it. True when one was accepted.
    private func tryPassword(_ password: String, _ a: inout AuthAttempt) throws -> Bool {
        if a.methods.contains("password") {
            let rc = libssh2_userauth_password_ex(a.s, a.user, a.ulen, password, UInt32(password.utf8.count), nil)
            if rc == 0 {
                authMethod = "password"
                log("authenticated as \(a.user) with password")
                return true
            }
            if rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_SEND { throw error(rc, "authenticating") }
            a.tried.append("password")
        }
        if a.methods.contains("keyboard-interactive") {
            let rc = sl_ssh_userauth_kbdint(a.s, a.user, a.ulen, password)
            if rc == 0 {
                authMethod = "keyboard-interactive"
                log("authenticated as \(a.user) with keyboard-interactive")
                return true
            }
            if rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_RECV || rc == LIBSSH2_ERROR_SOCKET_SEND { throw error(rc, "authenticating") }
            a.tried.append("keyboard-interactive")
        }
        return false
    }

    /// With no credential given: ssh-agent's identities, then ~/.ssh/id_ed25519, id_ecdsa and
    /// id_rsa. True when one was accepted; an error when there was nothing at all to try.
    private func tryDefaultIdentities(_ a: inout AuthAttempt) throws -> Bool {
        if try tryAgent(user: a.user, methods: a.methods, tried: &a.tried, rsaRefused: &a.rsaRefused) { return true }
        for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
            let path = options.expand("~/.ssh/" + name)
            guard FileManager.default.fileExists(atPath: path) else { continue }
            if try tryKeyFile(path, passphrase: options.privateKeyPass, named: false, &a) { return true }
        }
        if a.tried.isEmpty {
            throw SSHError(.credential, "no credential to log in to \(options.host) as \(a.user): give private_key or password, run ssh-agent, or create ~/.ssh/id_ed25519 (looked in \(options.home)/.ssh)")
        }
        return false
    }

    /// Why no credential was accepted: the connection dropped, no accepted method that the
    /// credentials could answer, or every credential tried and rejected.
    private func authenticationRefused(_ a: AuthAttempt) -> SSHError {
        // A refusal can also be the connection dropping mid-login: that is a ConnectionError.
        if peerClosed() {
            return SSHError(.connection, "the connection to \(options.host) was closed during authentication")
        }
        if a.tried.isEmpty {
            return SSHError(.authentication, "\(options.host) accepts only \(a.methods.joined(separator: ", ")) for \(a.user), which the given credentials cannot answer")
        }
        var msg = "\(options.host) rejected every credential for \(a.user) (tried: \(a.tried.joined(separator: ", ")))"
        if a.rsaRefused { msg += ". " + rsaNote }
        return SSHError(.authentication, msg)
    }

    /// Tries every identity ssh-agent holds. False when there is no agent or none was accepted.
    private func tryAgent(user: String, methods: [String], tried: inout [String], rsaRefused: inout Bool) throws -> Bool {
        guard methods.contains("publickey"), let sock = ProcessInfo.processInfo.environment["SSH_AUTH_SOCK"], !sock.isEmpty else { return false }
        let s = try handle()
        guard let agent = libssh2_agent_init(s) else { return false }
        defer { libssh2_agent_free(agent) }
        guard libssh2_agent_connect(agent) == 0 else { log("ssh-agent at SSH_AUTH_SOCK not reachable"); return false }
        defer { libssh2_agent_disconnect(agent) }
        guard libssh2_agent_list_identities(agent) == 0 else { return false }
        var prev: UnsafeMutablePointer<libssh2_agent_publickey>?
        var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
        var count = 0
        while count < 1000, libssh2_agent_get_identity(agent, &identity, prev) == 0, let id = identity {
            count += 1
            let comment = id.pointee.comment.map { String(cString: $0) } ?? "key \(count)"
            if libssh2_agent_userauth(agent, user, id) == 0 {
                authMethod = "publickey (ssh-agent: \(comment))"
                log("authenticated as \(user) with ssh-agent key \(comment)")
                return true
            }
            let blob = Data(bytes: id.pointee.blob, count: Int(id.pointee.blob_len))
            if Session.keyTypeName(blob: blob) == "ssh-rsa" { rsaRefused = true }
            tried.append("ssh-agent \(comment)")
            prev = id
        }
        return false
    }
}
