import ByteString
import CLibssh2
import Foundation

/// How an unknown or changed host key is handled.
public enum HostKeyPolicy: String, CaseIterable, Sendable {
    case acceptNew = "accept-new"
    case strict
    case off
}

/// Everything `sftp.connect` takes.
public struct ConnectOptions: Sendable {
    public var host: String
    public var port: Int = 22
    public var username: String?
    public var privateKey: String?
    public var privateKeyPass: String?
    public var password: String?
    public var knownHosts: String?
    public var hostKeyPolicy: HostKeyPolicy = .acceptNew
    public var timeout: Double?
    public var ciphers: [String]?
    public var compression = false
    /// Where connection events are written; never given a secret.
    public var log: (@Sendable (String) -> Void)?
    /// What a user should see even without -v (as ssh prints it): a host key newly recorded.
    public var notice: (@Sendable (String) -> Void)?
    /// `$HOME`: `~` expands to it, default identities and known_hosts live under it.
    public var home: String = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()

    public init(host: String) { self.host = host }

    public func expand(_ path: String) -> String {
        if path == "~" { return home }
        if path.hasPrefix("~/") { return home + path.dropFirst(1) }
        return path
    }
    public var knownHostsPath: String { expand(knownHosts ?? "~/.ssh/known_hosts") }
    public var user: String {
        if let username { return username }
        if let u = ProcessInfo.processInfo.environment["USER"], !u.isEmpty { return u }
        if let pw = getpwuid(getuid()) { return String(cString: pw.pointee.pw_name) }
        return "root"
    }
}

/// One SSH connection (socket + libssh2 session), connected, host-verified and authenticated.
/// The owner of both: `close()` (or deinit) disconnects and frees them; closing twice is harmless.
public final class Session {
    public private(set) var raw: OpaquePointer?
    private var socket: Int32 = -1
    public let options: ConnectOptions
    /// How the user was authenticated ("publickey (~/.ssh/id_ed25519)", "password", ...).
    public internal(set) var authMethod = ""
    /// Host key type and SHA256 fingerprint the server presented.
    public private(set) var hostKeyType = ""
    public private(set) var hostKeyFingerprint = ""

    static let libraryReady: Bool = { libssh2_init(0) == 0 }()

    public init(_ options: ConnectOptions) throws {
        self.options = options
        guard Session.libraryReady else { throw SSHError(.connection, "libssh2 failed to initialise") }
        do {
            try connectSocket()
            try startSession()
            try verifyHostKey()
            try authenticate()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    public var isOpen: Bool { raw != nil }

    public func close() {
        if let s = raw {
            raw = nil
            LiveHandles.sessions.add(-1)
            libssh2_session_disconnect_ex(s, SSH_DISCONNECT_BY_APPLICATION, "bye", "")
            libssh2_session_free(s)
        }
        if socket >= 0 {
            Foundation.close(socket)
            socket = -1
        }
    }

    func log(_ s: String) { options.log?(s) }

    /// True when the server has closed the socket (end of file, or an error, pending).
    func peerClosed() -> Bool {
        guard socket >= 0 else { return true }
        var p = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 0) > 0 else { return false }
        if p.revents & Int16(POLLHUP | POLLERR) != 0 { return true }
        var byte: UInt8 = 0
        let n = recv(socket, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
    }

    /// The session handle, or ConnectionError when closed.
    public func handle() throws -> OpaquePointer {
        guard let s = raw else { throw SSHError(.connection, "the connection is closed") }
        return s
    }

    /// The server-side timeout, in seconds (nil: wait forever).
    public var timeout: Double? {
        didSet { if let s = raw { libssh2_session_set_timeout(s, Self.millis(timeout)) } }
    }
    static func millis(_ t: Double?) -> Int {
        guard let t, t > 0 else { return 0 }
        return max(1, Int((t * 1000).rounded()))
    }

    // MARK: errors

    /// The session's last error as an SSHError; `what` says what was being done.
    public func error(_ rc: Int32, _ what: String, path: String? = nil) -> SSHError {
        var msgPtr: UnsafeMutablePointer<CChar>?
        var len: Int32 = 0
        var text = "error \(rc)"
        if let s = raw {
            libssh2_session_last_error(s, &msgPtr, &len, 0)
            if let msgPtr, len > 0 { text = String(cString: msgPtr) }
        }
        if Interrupt.pending() {
            // poll() was cut short by SIGINT; libssh2 reports it as a timeout.
            Interrupt.consume()
            return SSHError(.interrupted, "\(what): interrupted (Ctrl-C)", path: path, code: .libssh2(LibSSH2Code(rawValue: Int32(rc))))
        }
        switch rc {
        case LIBSSH2_ERROR_TIMEOUT, LIBSSH2_ERROR_SOCKET_TIMEOUT:
            return SSHError(.timeout, "\(what): timed out after \(timeout.map { "\($0)" } ?? "?") s", path: path, code: .libssh2(LibSSH2Code(rawValue: Int32(rc))))
        case LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_RECV, LIBSSH2_ERROR_SOCKET_DISCONNECT,
             LIBSSH2_ERROR_BANNER_RECV, LIBSSH2_ERROR_BANNER_SEND, LIBSSH2_ERROR_KEX_FAILURE,
             LIBSSH2_ERROR_DECRYPT, LIBSSH2_ERROR_CHANNEL_CLOSED, LIBSSH2_ERROR_CHANNEL_EOF_SENT,
             LIBSSH2_ERROR_BAD_SOCKET:
            return SSHError(.connection, "\(what): \(text) (connection lost)", path: path, code: .libssh2(LibSSH2Code(rawValue: Int32(rc))))
        default:
            return SSHError(.io, "\(what): \(text)", path: path, code: .libssh2(LibSSH2Code(rawValue: Int32(rc))))
        }
    }

    // MARK: connect

    private func connectSocket() throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let gai = getaddrinfo(options.host, String(options.port), &hints, &res)
        guard gai == 0, let first = res else {
            throw SSHError(.connection, "cannot resolve host '\(options.host)': \(String(cString: gai_strerror(gai)))")
        }
        defer { freeaddrinfo(res) }
        var lastError: Int32 = 0
        var timedOut = false
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            ai = a.pointee.ai_next
            let fd = Foundation.socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd < 0 { lastError = errno; continue }
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var rc = Foundation.connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen)
            if rc != 0 && errno == EINPROGRESS {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ms = options.timeout.map { Int32(Self.millis($0)) } ?? -1
                var pr: Int32
                repeat { pr = poll(&pfd, 1, ms) } while pr < 0 && errno == EINTR
                if pr == 0 {
                    timedOut = true
                    rc = -1
                    lastError = ETIMEDOUT
                } else {
                    var soErr: Int32 = 0
                    var len = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len)
                    rc = soErr == 0 ? 0 : -1
                    if soErr != 0 { lastError = soErr }
                }
            } else if rc != 0 {
                lastError = errno
            }
            if rc == 0 {
                _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK)
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                socket = fd
                log("connected to \(options.host) port \(options.port)")
                return
            }
            Foundation.close(fd)
        }
        let what = "cannot connect to \(options.host) port \(options.port)"
        if timedOut { throw SSHError(.timeout, "\(what): timed out after \(options.timeout ?? 0) s", errno: ETIMEDOUT) }
        throw SSHError(.connection, "\(what): \(String(cString: strerror(lastError)))", errno: lastError)
    }

    static let preferredCiphers = ["aes128-ctr", "aes128-gcm@openssh.com", "aes256-ctr", "aes192-ctr",
                                   "chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com"]

    /// Algorithms libssh2 supports for `method`.
    public static func supported(_ method: Int32) -> [String] {
        guard let s = sl_ssh_session_init() else { return [] }
        defer { libssh2_session_free(s) }
        var algs: UnsafeMutablePointer<UnsafePointer<CChar>?>?
        let n = libssh2_session_supported_algs(s, method, &algs)
        guard n > 0, let algs else { return [] }
        defer { libssh2_free(s, algs) }
        return (0..<Int(n)).compactMap { algs[$0].map { String(cString: $0) } }
    }

    private func startSession() throws {
        guard let s = sl_ssh_session_init() else { throw SSHError(.connection, "cannot create an SSH session") }
        raw = s
        LiveHandles.sessions.add(1)
        libssh2_session_set_blocking(s, 1)
        timeout = options.timeout
        if options.compression { libssh2_session_flag(s, LIBSSH2_FLAG_COMPRESS, 1) }
        // Ciphers: the user's order, else aes128-ctr first (fastest here), then libssh2's own order.
        let supported = Self.supported(LIBSSH2_METHOD_CRYPT_CS)
        let ciphers: [String]
        if let wanted = options.ciphers {
            let unknown = wanted.filter { !supported.contains($0) }
            if !unknown.isEmpty {
                throw SSHError(.argument, "unsupported cipher(s) \(unknown.joined(separator: ", ")); supported: \(supported.joined(separator: ", "))")
            }
            ciphers = wanted
        } else {
            ciphers = Self.preferredCiphers.filter { supported.contains($0) } + supported.filter { !Self.preferredCiphers.contains($0) }
        }
        if !ciphers.isEmpty {
            let list = ciphers.joined(separator: ",")
            libssh2_session_method_pref(s, LIBSSH2_METHOD_CRYPT_CS, list)
            libssh2_session_method_pref(s, LIBSSH2_METHOD_CRYPT_SC, list)
        }
        // Host key type: ask for the type(s) known_hosts has for this host first.
        if options.hostKeyPolicy != .off {
            let known = (try? KnownHosts(path: options.knownHostsPath))?.keyTypes(host: options.host, port: options.port) ?? []
            let supportedKeys = Self.supported(LIBSSH2_METHOD_HOSTKEY)
            // Unknown hosts: ed25519 first, as OpenSSH does, so ssh and sftplua record the same key.
            let first = (known + ["ssh-ed25519"]).filter { supportedKeys.contains($0) }
            var order: [String] = []
            for k in first + supportedKeys where !order.contains(k) { order.append(k) }
            if !order.isEmpty {
                libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, order.joined(separator: ","))
            }
        }
        let rc = libssh2_session_handshake(s, socket)
        if rc != 0 {
            var e = error(rc, "SSH handshake with \(options.host) port \(options.port) failed")
            if e.kind != .timeout { e.kind = .connection }
            if rc == LIBSSH2_ERROR_KEX_FAILURE, let why = KexProbe.explain(host: options.host, port: options.port) {
                e.message += ": " + why
            }
            throw e
        }
        log("SSH handshake done; cipher \(activeMethod(LIBSSH2_METHOD_CRYPT_CS) ?? "?")")
    }

    /// The server's identification string ("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", say).
    public var serverBanner: String {
        guard let s = raw, let p = libssh2_session_banner_get(s) else { return "" }
        return String(cString: p)
    }

    /// The negotiated ciphers, client to server and server to client.
    public var activeCiphers: [String] {
        [activeMethod(LIBSSH2_METHOD_CRYPT_CS) ?? "", activeMethod(LIBSSH2_METHOD_CRYPT_SC) ?? ""]
    }

    /// The negotiated algorithm for `method`.
    public func activeMethod(_ method: Int32) -> String? {
        guard let s = raw, let p = libssh2_session_methods(s, method) else { return nil }
        return String(cString: p)
    }

    // MARK: host key

    private func verifyHostKey() throws {
        let s = try handle()
        var len = 0
        var type: Int32 = 0
        guard let keyPtr = libssh2_session_hostkey(s, &len, &type), len > 0 else {
            throw SSHError(.hostKey, "the server sent no host key")
        }
        let blob = Data(bytes: keyPtr, count: len)
        hostKeyType = Self.keyTypeName(blob: blob) ?? "unknown"
        let key = blob.base64EncodedString()
        if let h = libssh2_hostkey_hash(s, LIBSSH2_HOSTKEY_HASH_SHA256) {
            let digest = Data(bytes: h, count: 32).base64EncodedString()
            hostKeyFingerprint = "SHA256:" + digest.replacingOccurrences(of: "=", with: "")
        }
        let policy = options.hostKeyPolicy
        if policy == .off {
            log("host key not checked (host_key = off): \(hostKeyType) \(hostKeyFingerprint)")
            return
        }
        let path = options.knownHostsPath
        let known = try KnownHosts(path: path)
        let name = KnownHosts.lookupName(host: options.host, port: options.port)
        switch known.check(host: options.host, port: options.port, keyType: hostKeyType, key: key) {
        case .match:
            log("host key \(hostKeyType) \(hostKeyFingerprint) matches \(path)")
        case .revoked:
            throw SSHError(.hostKey, "the host key of \(name) (\(hostKeyType) \(hostKeyFingerprint)) is marked @revoked in \(path)", path: path)
        case .changed(let types):
            throw SSHError(.hostKey, "HOST KEY CHANGED for \(name): the server presented \(hostKeyType) \(hostKeyFingerprint), but \(path) knows this host by another key (\(types.joined(separator: ", "))). Someone may be intercepting the connection; if the key really changed, remove the old entry (ssh-keygen -R '\(name)' -f \(path))", path: path)
        case .unknown:
            if policy == .strict {
                throw SSHError(.hostKey, "the host key of \(name) is not known (\(hostKeyType) \(hostKeyFingerprint)) and host_key is 'strict': add it to \(path) or connect once with host_key = 'accept-new'", path: path)
            }
            try KnownHosts.append(path: path, host: options.host, port: options.port, keyType: hostKeyType, key: key)
            log("new host key \(hostKeyType) \(hostKeyFingerprint) for \(name) recorded in \(path)")
            // ssh's own words, so that users and their scripts recognise it.
            let shown = options.port == 22 ? options.host : "[\(options.host)]:\(options.port)"
            options.notice?("Warning: Permanently added '\(shown)' (\(Self.typeLabel(hostKeyType))) to the list of known hosts.")
        }
    }

    /// ssh's label for a key type: ED25519, ECDSA, RSA, DSA.
    static func typeLabel(_ t: String) -> String {
        if t.contains("ed25519") { return "ED25519" }
        if t.hasPrefix("ecdsa") { return "ECDSA" }
        if t.contains("rsa") { return "RSA" }
        if t.contains("dss") { return "DSA" }
        return t.uppercased()
    }

    /// The algorithm name at the start of an SSH key blob.
    static func keyTypeName(blob: Data) -> String? {
        guard blob.count >= 4 else { return nil }
        let b = [UInt8](blob.prefix(4))
        let n = Int(b[0]) << 24 | Int(b[1]) << 16 | Int(b[2]) << 8 | Int(b[3])
        guard n > 0, n < 64, blob.count >= 4 + n else { return nil }
        return String(decoding: blob.dropFirst(4).prefix(n), as: UTF8.self)
    }
}

extension Session {
    /// Runs `command` on the server; returns its standard output and standard error, kept
    /// apart, and its exit status. Both streams are read as they come (non-blocking, one loop),
    /// so a command that writes much to one while the other is quiet never stalls. Bounded:
    /// at most 512 MiB of output; the session timeout applies to a command that says nothing.
    public func exec(_ command: String) throws -> (stdout: [UInt8], stderr: [UInt8], status: Int32) {
        let s = try handle()
        let type = "session"
        guard let ch = libssh2_channel_open_ex(s, type, UInt32(type.utf8.count), 2 * 1024 * 1024, 32768, nil, 0) else {
            throw error(libssh2_session_last_errno(s), "cannot open a channel to run a command")
        }
        defer { libssh2_channel_free(ch) }
        let req = "exec"
        // The command's own bytes (ByteString: a name in it that is not UTF-8 stays as it is).
        let bytes = ByteString.bytes(command)
        let rc = bytes.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { libssh2_channel_process_startup(ch, req, UInt32(req.utf8.count), $0.baseAddress, UInt32($0.count)) }
        }
        if rc == LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED {
            throw SSHError(.io, "cannot run command: the server does not run commands (it refused exec; SFTP-only servers do)", code: .libssh2(LibSSH2Code(rawValue: Int32(rc))))
        }
        if rc != 0 { throw error(rc, "cannot run command") }
        let (out, err) = try readCommandOutput(s, ch)
        return (out, err, commandStatus(s, ch))
    }

    /// Reads the command's standard output and standard error until the channel's end, the
    /// session non-blocking meanwhile (blocking again on return, however it ends).
    private func readCommandOutput(_ s: OpaquePointer, _ ch: OpaquePointer) throws -> ([UInt8], [UInt8]) {
        var out: [UInt8] = [], err: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        libssh2_session_set_blocking(s, 0)
        defer { libssh2_session_set_blocking(s, 1) }
        var idleSince = Date()
        var rounds = 0
        readLoop: while rounds < 100_000_000 {
            rounds += 1
            var progressed = false
            for stream: Int32 in [0, 1] {
                while true {
                    let n = buf.withUnsafeMutableBytes { libssh2_channel_read_ex(ch, stream, $0.baseAddress!.assumingMemoryBound(to: CChar.self), $0.count) }
                    if n > 0 {
                        if stream == 0 { out += buf[0..<n] } else { err += buf[0..<n] }
                        progressed = true
                        if out.count + err.count > 512 << 20 { throw SSHError(.io, "the output of the command is over 512 MiB") }
                        continue
                    }
                    if n == Int(LIBSSH2_ERROR_EAGAIN) || n == 0 { break }
                    throw error(Int32(n), "reading the output of a command")
                }
            }
            if progressed { idleSince = Date(); continue }
            if libssh2_channel_eof(ch) != 0 { break readLoop }
            try Interrupt.checkpoint()
            if let t = timeout, Date().timeIntervalSince(idleSince) > t {
                throw SSHError(.timeout, "running a command: no output and no end for \(t) s")
            }
            waitForSocket(s)
        }
        return (out, err)
    }

    /// Waits (200 ms at most, so that Ctrl-C is seen) for the socket in the direction libssh2 needs.
    private func waitForSocket(_ s: OpaquePointer) {
        let dirs = libssh2_session_block_directions(s)
        var events: Int16 = 0
        if dirs & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
        if dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
        var p = pollfd(fd: socket, events: events == 0 ? Int16(POLLIN) : events, revents: 0)
        _ = poll(&p, 1, 200)
    }

    /// Closes the command's channel and returns its exit status; a command killed by a signal
    /// has none: 128 + the signal's number, as shells say.
    private func commandStatus(_ s: OpaquePointer, _ ch: OpaquePointer) -> Int32 {
        let rc = libssh2_channel_close(ch)
        if rc == 0 { libssh2_channel_wait_closed(ch) }
        var sig: UnsafeMutablePointer<CChar>?
        var sigLen = 0
        if libssh2_channel_get_exit_signal(ch, &sig, &sigLen, nil, nil, nil, nil) == 0, let sig {
            defer { libssh2_free(s, sig) }
            let name = String(cString: sig)
            let numbers = ["HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11,
                           "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15]
            return Int32(128 + (numbers[name] ?? 0))
        }
        return libssh2_channel_get_exit_status(ch)
    }

    /// Algorithms libssh2 offers, by kind (pysftp's security_options).
    public static var securityOptions: [String: [String]] {
        ["ciphers": supported(LIBSSH2_METHOD_CRYPT_CS), "digests": supported(LIBSSH2_METHOD_MAC_CS),
         "kex": supported(LIBSSH2_METHOD_KEX), "key_types": supported(LIBSSH2_METHOD_HOSTKEY),
         "compression": supported(LIBSSH2_METHOD_COMP_CS)]
    }
}
