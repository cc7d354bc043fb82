import ByteString
import Foundation
import LuaHost
import SFTPCore

/// A Connection as Lua sees it: a session, its SFTP channel, and the pysftp-style remote cwd.
final class Connection {
    /// The SFTP channel; it holds the session (replaced together by `reconnect`).
    private(set) var sftp: SFTP
    var session: Session { sftp.session }
    /// The remote working directory set by chdir/cd (nil until set, as in pysftp).
    var cwd: String?
    let logfile: String?
    let log: ConnectionLog?
    private(set) var closed = false

    init(options: ConnectOptions, log: ConnectionLog?) throws {
        self.log = log
        self.logfile = log?.path
        var options = options
        options.log = { line in
            log?.write(line)
            Diagnostics.note(line)
        }
        options.notice = { line in
            log?.write(line)
            if !Diagnostics.quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        sftp = try SFTP.connect(options)
        note("SFTP session open")
    }

    deinit { close() }

    /// Opens a new session with the same settings and swaps it in (retries and the watcher,
    /// after a lost connection). The remote cwd is kept. On failure the old (dead) session
    /// stays. A connection the script closed stays closed: closing is final.
    func reconnect() throws {
        if closed { throw SSHError(.connection, "the connection is closed") }
        let options = session.options
        sftp.closeWithSession()
        sftp = try SFTP.connect(options)
        note("reconnected")
    }

    func close() {
        guard !closed else { return }
        closed = true
        sftp.closeWithSession()
        note("connection closed")
    }

    /// An event for the connection log and `-v` (never a secret).
    func note(_ line: @autoclosure () -> String) {
        guard log != nil || Diagnostics.verbose else { return }   // no formatting when nobody reads it
        let text = line()
        log?.write(text)
        Diagnostics.note(text)
    }

    /// The SFTP channel, or ConnectionError after close.
    func channel() throws -> SFTP {
        if closed { throw SSHError(.connection, "the connection is closed") }
        return sftp
    }

    /// Resolves a remote path against the cwd set by chdir/cd. A NUL byte cannot be in a path
    /// (servers end the session on one): ArgumentError.
    func remote(_ path: String) throws -> String {
        if path.utf8.contains(0) { throw SSHError(.argument, "bad path (it contains a NUL byte)", path: path) }
        guard let cwd, !path.hasPrefix("/") else { return path }
        if path.isEmpty || path == "." { return cwd }
        return Paths.join(cwd, path)
    }

    var label: String { "\(session.options.user)@\(session.options.host):\(session.options.port)" }
}

/// The connection log (`log = true | path`): events, never secrets.
/// `@unchecked Sendable`: extra connections log from their threads; every write takes `lock`.
final class ConnectionLog: @unchecked Sendable {
    let path: String
    private let handle: FileHandle
    private let lock = NSLock()

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw LocalError(errno, "cannot create log file", path: path)
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw LocalError(errno, "cannot open log file", path: path) }
        h.seekToEndOfFile()
        self.path = path
        self.handle = h
    }

    /// A new log file in the temp directory (pysftp's `log=True`).
    static func temporary() throws -> ConnectionLog {
        let dir = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(dir)/sftplua-XXXXXX.log".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemps($0.baseAddress!, 4) }
        guard fd >= 0 else { throw LocalError(errno, "cannot create log file", path: dir) }
        Foundation.close(fd)
        return try ConnectionLog(path: ByteString.string(template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }))
    }

    func write(_ line: String) {
        let stamp = ISO8601DateFormatter().string(from: Date())
        lock.lock(); defer { lock.unlock() }
        handle.write(Data("\(stamp) \(Paths.oneLine(line))\n".utf8))
    }
}
