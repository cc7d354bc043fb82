import CLibssh2
import Foundation

/// Every failure of SFTPCore. `kind` is one of the contract's error kinds.
public struct SSHError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, CaseIterable {
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
    public var kind: Kind
    public var message: String
    public var path: String?
    /// SFTP status code or errno, where one applies.
    public var code: Int?

    public init(_ kind: Kind, _ message: String, path: String? = nil, code: Int? = nil) {
        self.kind = kind
        self.message = message
        self.path = path
        self.code = code
    }
    public var description: String { "\(kind.rawValue): \(message)" }

    /// A local (errno) failure about `path`.
    public static func local(_ err: Int32 = errno, _ what: String, path: String) -> SSHError {
        let text = String(cString: strerror(err))
        let kind: Kind
        switch err {
        case ENOENT, ENOTDIR: kind = .fileNotFound
        case EACCES, EPERM, EROFS: kind = .permissionDenied
        case EEXIST: kind = .fileExists
        default: kind = .os
        }
        return SSHError(kind, "\(what) \(path): \(text)", path: path, code: Int(err))
    }
}

/// SFTP status codes (draft-ietf-secsh-filexfer-02) with their meaning.
enum SFTPStatus {
    static func kind(_ status: UInt) -> SSHError.Kind {
        switch status {
        case LIBSSH2_FX_NO_SUCH_FILE, LIBSSH2_FX_NO_SUCH_PATH, LIBSSH2_FX_NOT_A_DIRECTORY: return .fileNotFound
        case LIBSSH2_FX_PERMISSION_DENIED, LIBSSH2_FX_WRITE_PROTECT, LIBSSH2_FX_LOCK_CONFLICT: return .permissionDenied
        case LIBSSH2_FX_FILE_ALREADY_EXISTS: return .fileExists
        case LIBSSH2_FX_NO_CONNECTION, LIBSSH2_FX_CONNECTION_LOST: return .connection
        default: return .io
        }
    }
    static func text(_ status: UInt) -> String {
        switch status {
        case LIBSSH2_FX_EOF: return "end of file"
        case LIBSSH2_FX_NO_SUCH_FILE: return "no such file"
        case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied"
        case LIBSSH2_FX_FAILURE: return "failure"
        case LIBSSH2_FX_BAD_MESSAGE: return "bad message"
        case LIBSSH2_FX_NO_CONNECTION: return "no connection"
        case LIBSSH2_FX_CONNECTION_LOST: return "connection lost"
        case LIBSSH2_FX_OP_UNSUPPORTED: return "operation unsupported"
        case LIBSSH2_FX_INVALID_HANDLE: return "invalid handle"
        case LIBSSH2_FX_NO_SUCH_PATH: return "no such path"
        case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file already exists"
        case LIBSSH2_FX_WRITE_PROTECT: return "write protected"
        case LIBSSH2_FX_NO_MEDIA: return "no media"
        case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space on filesystem"
        case LIBSSH2_FX_QUOTA_EXCEEDED: return "quota exceeded"
        case LIBSSH2_FX_DIR_NOT_EMPTY: return "directory not empty"
        case LIBSSH2_FX_NOT_A_DIRECTORY: return "not a directory"
        case LIBSSH2_FX_INVALID_FILENAME: return "invalid filename"
        case LIBSSH2_FX_LINK_LOOP: return "link loop"
        default: return "status \(status)"
        }
    }
}

/// Ctrl-C, as seen from SFTPCore: the layer that owns the signal handler installs `pending` and
/// `clear`; long loops call `checkpoint()`.
public enum Interrupt {
    nonisolated(unsafe) public static var pending: () -> Bool = { false }
    nonisolated(unsafe) public static var clear: () -> Void = {}

    /// Throws `Interrupted` (and disarms the request) when Ctrl-C was pressed.
    public static func checkpoint() throws {
        if pending() {
            clear()
            throw SSHError(.interrupted, "interrupted (Ctrl-C)")
        }
    }
}

/// How many libssh2 objects are alive (sessions, SFTP channels, open remote files): leak checks.
public enum LiveHandles {
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
