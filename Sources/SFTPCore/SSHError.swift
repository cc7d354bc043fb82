import CLibssh2
import Foundation
import SystemPackage

/// The contract's error kinds: what every failure reaching Lua says it is.
public enum ErrorKind: String, CaseIterable, Sendable {
    case connection = "ConnectionError"
    case hostKey = "HostKeyError"
    case credential = "CredentialError"
    case authentication = "AuthenticationError"
    case fileNotFound = "FileNotFound"
    case permissionDenied = "PermissionDenied"
    case fileExists = "FileExists"
    case io = "IOError"
    case os = "OSError"
    case timeout = "Timeout"
    case argument = "ArgumentError"
    /// Ctrl-C (an addition to the contract's kinds).
    case interrupted = "Interrupted"
}

/// A failure as Lua sees it (an error object): its kind, message, the path it is about, and
/// its code as a number. Two types carry them, never mixed: `SSHError` (the session, the
/// server, the network) and `LocalError` (the local file system).
public protocol KindedError: Error, CustomStringConvertible {
    var kind: ErrorKind { get }
    var message: String { get }
    var path: String? { get }
    /// The code (an errno, an SFTP status or a libssh2 code) as Lua's `code`.
    var number: Int? { get }
}

extension KindedError {
    public var description: String { "\(kind.rawValue): \(message)" }
}

/// A failure of the session, the network or the server.
public struct SSHError: KindedError, Equatable {
    public typealias Kind = ErrorKind
    public var kind: Kind
    public var message: String
    public var path: String?
    /// What the failure's code is, where one applies: the server's SFTP status, a libssh2
    /// error, or the errno of a socket call. Three types, never confused.
    public var code: Code?

    public enum Code: Equatable, Sendable {
        case errno(Errno)
        case sftpStatus(SFTPStatusCode)
        case libssh2(LibSSH2Code)
        /// The number (for Lua's `code` field).
        public var number: Int {
            switch self {
            case .errno(let e): return Int(e.rawValue)
            case .sftpStatus(let s): return Int(s.rawValue)
            case .libssh2(let c): return Int(c.rawValue)
            }
        }
    }

    public init(_ kind: Kind, _ message: String, path: String? = nil, code: Code? = nil) {
        self.kind = kind
        self.message = message
        self.path = path
        self.code = code
    }
    /// A failure of a socket call, with its errno.
    public init(_ kind: Kind, _ message: String, path: String? = nil, errno err: Int32) {
        self.init(kind, message, path: path, code: .errno(Errno(rawValue: err)))
    }
    public var number: Int? { code?.number }
    /// The server answered with an SFTP status (a refusal, not a lost connection).
    public var isStatus: Bool { if case .sftpStatus = code { return true }; return false }
}

/// A failure of the local file system: what was done, to which path, and the errno (as
/// swift-system's `Errno`) where the system gave one.
public struct LocalError: KindedError, Equatable {
    public var kind: ErrorKind
    public var message: String
    public var path: String?
    public var errno: Errno?

    public init(_ kind: ErrorKind, _ message: String, path: String? = nil, errno err: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.path = path
        self.errno = err.map { Errno(rawValue: $0) }
    }

    /// `what path: strerror(err)`, its kind from the errno: ENOENT and ENOTDIR are FileNotFound,
    /// EACCES, EPERM and EROFS PermissionDenied, EEXIST FileExists, any other OSError.
    public init(_ err: Int32 = Glibc.errno, _ what: String, path: String) {
        if path.utf8.contains(0) {
            self.init(.argument, "\(what) \(path): bad path (it contains a NUL byte)", path: path)
            return
        }
        let kind: ErrorKind
        switch err {
        case ENOENT, ENOTDIR: kind = .fileNotFound
        case EACCES, EPERM, EROFS: kind = .permissionDenied
        case EEXIST: kind = .fileExists
        default: kind = .os
        }
        self.init(kind, "\(what) \(path): \(String(cString: strerror(err)))", path: path, errno: err)
    }
    public var number: Int? { errno.map { Int($0.rawValue) } }
}

/// An SFTP status code, as a server answered it (`FX`).
public struct SFTPStatusCode: RawRepresentable, Equatable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
}

/// A libssh2 error code (LIBSSH2_ERROR_*, negative).
public struct LibSSH2Code: RawRepresentable, Equatable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
}

/// SFTP status codes (draft-ietf-secsh-filexfer-02 and later drafts) as error kinds.
enum SFTPStatus {
    static func kind(_ status: UInt32) -> SSHError.Kind {
        switch status {
        case FX.NO_SUCH_FILE, FX.NO_SUCH_PATH, FX.NOT_A_DIRECTORY: return .fileNotFound
        case FX.PERMISSION_DENIED, FX.WRITE_PROTECT, FX.LOCK_CONFLICT: return .permissionDenied
        case FX.FILE_ALREADY_EXISTS: return .fileExists
        case FX.NO_CONNECTION, FX.CONNECTION_LOST: return .connection
        default: return .io
        }
    }
}

/// Ctrl-C, as seen from SFTPCore: the layer that owns the signal handler installs `pending` and
/// `clear`; long loops call `checkpoint()`.
public enum Interrupt {
    // nonisolated(unsafe): installed once (`SFTPModule.enableInterrupts`) before any transfer
    // thread exists; only read afterwards.
    nonisolated(unsafe) public static var flag: () -> Bool = { false }
    /// Takes the request and disarms the Lua hook (true when there was one). Called by
    /// `consume` only: the C hook and this are the one clear (`sl_interrupt_clear`).
    nonisolated(unsafe) public static var clear: () -> Bool = { false }
    /// Requests taken so far, by `clear` or by the Lua hook (C's `sl_interrupt_taken`, an atomic).
    nonisolated(unsafe) public static var taken: () -> Int = { 0 }

    /// Is a Ctrl-C request waiting? On a worker thread (`startWorker`), also true once a request
    /// made since the worker started has been taken by the Lua thread: the Lua thread takes it
    /// at once and stops its own part of the call, and a worker (a `parallel` connection, a
    /// range of a resumed file) must stop too, not go on, unpaced, to the end of its files.
    public static func pending() -> Bool {
        if flag() { return true }
        guard let started = pthread_getspecific(workerKey) else { return false }
        return taken() != Int(bitPattern: started) - 1
    }

    /// The count of requests taken a worker started at (none on other threads).
    private static let workerKey: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k, nil)
        return k
    }()

    /// The count a worker starts at: read on the thread that starts it.
    public static var requestsTaken: Int { taken() }

    /// A worker that has stopped for the requests taken so far: its waits from now on (for the
    /// removal of what it abandoned) end only for a new Ctrl-C. Nothing on other threads.
    static func workerStopped() {
        if pthread_getspecific(workerKey) != nil { enterWorker(startedAt: taken()) }
    }

    /// Marks this thread a worker started when `requestsTaken` was `count`.
    static func enterWorker(startedAt count: Int) {
        pthread_setspecific(workerKey, UnsafeRawPointer(bitPattern: count + 1))
    }

    /// Throws `Interrupted` (and disarms the request) when Ctrl-C was pressed.
    public static func checkpoint() throws {
        if pending() {
            consume()
            throw SSHError(.interrupted, "interrupted (Ctrl-C)")
        }
    }

    /// The thread that runs Lua (set with `pending` and `clear`): the one place the flag is
    /// cleared and the Lua hook disarmed. Workers on other threads see the flag and stop, and
    /// leave it for that thread.
    // nonisolated(unsafe): set once at install, before any transfer thread exists.
    nonisolated(unsafe) public static var owner: pthread_t?

    /// Takes the request, on the Lua thread only: true when there was one (and it is now
    /// cleared). Elsewhere it stays for that thread to see (false). Every Swift clear is this.
    @discardableResult
    public static func consume() -> Bool {
        guard pending() else { return false }
        RateLimiter.active?.stop()   // the rest of the interrupted call does not wait for the rate
        guard onLuaThread else { return false }
        return clear()
    }

    /// Is this the thread that runs Lua (or is there no Lua thread set)?
    public static var onLuaThread: Bool {
        guard let owner else { return true }
        return pthread_equal(owner, pthread_self()) != 0
    }
}

/// How many libssh2 objects are alive (sessions, SFTP channels, open remote files): leak checks.
public enum LiveHandles {
    /// `@unchecked Sendable`: `n` is only used under `lock`.
    public final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        public func add(_ d: Int) { lock.lock(); n += d; lock.unlock() }
        public var value: Int { lock.lock(); defer { lock.unlock() }; return n }
    }
    public static let sessions = Counter()
    public static let channels = Counter()
    public static let files = Counter()
}
