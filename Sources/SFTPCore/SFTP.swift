import ByteString
import CLibssh2
import Foundation

extension WireWriter {
    /// A path or name: the exact bytes the String holds (`ByteString`), never re-encoded.
    mutating func string(_ s: String) { string(ByteString.bytes(s)) }
}

/// One entry of a directory listing.
public struct DirEntry: Equatable {
    /// The name's exact bytes, as the server sent them.
    public var rawName: [UInt8]
    public var name: String
    public var longname: String
    public var attributes: FileAttributes

    public init(_ e: NameEntry) {
        rawName = e.name
        name = ByteString.string(e.name)
        longname = String(decoding: e.longname, as: UTF8.self)
        attributes = e.attributes
    }
}

/// An SFTP connection of our own (protocol version 3) over a libssh2 channel on the `sftp`
/// subsystem. libssh2 is the transport (session, keys, auth, channel, crypto); everything SFTP
/// is here: packets, request ids, replies, extensions, and pipelining.
///
/// Pipelining: `send` queues a request with a completion and returns at once; `wait(until:)`
/// writes what is queued and reads replies, handing each to its completion by id, until the
/// condition holds. Completions run on the calling thread and may send more requests (never
/// wait). The synchronous operations (`stat`, `list`, ...) are `send` + `wait`.
///
/// Flow control without deadlock: the channel's receive window (`window`) is larger than the
/// reply bytes allowed in flight (`replyBudget`), so the server can always deliver every reply
/// it owes, even while a blocking write waits for the server's window.
/// `@unchecked Sendable`: an SFTP connection is used by one thread at a time (the caller's, or
/// the one pool worker or range worker it was handed to); it is never shared while in use.
public final class SFTP: @unchecked Sendable {
    public let session: Session
    private var channel: OpaquePointer?
    /// The protocol version the server speaks (we ask for 3).
    public private(set) var version: UInt32 = 3
    /// Extensions the server announced in VERSION, by name (data as text, e.g. "1").
    public private(set) var extensions: [String: String] = [:]
    /// Largest read and write sizes we use (the server's `limits@openssh.com`, else 32 KiB, the
    /// size every server must accept).
    public private(set) var readLength = 32768
    public private(set) var writeLength = 32768
    /// Open handles the server allows at once (limits), nil when it does not say.
    public private(set) var maxOpenHandles: Int?

    static let window: UInt32 = 16 << 20
    /// Reply bytes (DATA of reads in flight, mostly) allowed at once: under `window`.
    public static let replyBudget = 12 << 20
    /// Request bytes (WRITE data, mostly) queued or in flight at once.
    public static let requestBudget = 8 << 20
    /// Requests in flight at once (also bounded by the budgets above).
    public static let maxRequests = 2048

    typealias Completion = (Result<Reply, SSHError>) -> Void
    /// `data`: the file bytes the request moves (a READ's length, a WRITE's data), for bwlimit.
    /// `limiter`: the bwlimit a READ was counted against (a short answer refunds it there).
    /// `keep`: the completion survives `abandonAll` (an abandoned upload's temp file is removed
    /// through it).
    private struct Pending {
        let expect: Int; let sent: Int; var data = 0; var limiter: RateLimiter? = nil; var keep = false
        let done: Completion
    }
    private var nextID: UInt32 = 1
    private var pending: [UInt32: Pending] = [:]
    public private(set) var replyBytesInFlight = 0
    public private(set) var requestBytesInFlight = 0
    /// File bytes of the READs and WRITEs in flight; under bwlimit they stay within about a
    /// quarter second of the rate (`hasRoom(data:)`), so the rate holds on the wire, not only on average.
    public private(set) var dataInFlight = 0
    /// File bytes queued since the last flush, not yet paced: `flush` sleeps for them before it
    /// writes them (requests go out at the rate; a READ's reply comes back at it).
    private var paceDebt = 0
    private var out: [UInt8] = []
    private var inbuf: [UInt8] = []
    private var inHead = 0
    private var scratch = [UInt8](repeating: 0, count: 256 << 10)
    /// Once the connection failed, every call fails with this.
    private var failure: SSHError?
    private var dispatching = false
    /// False while replies owed to dropped reads are drained (a closing file): the data in flight
    /// then holds nothing back (`withinRate`); what is still sent is paced as always (`flush`).
    private var pacing = true

    public init(session: Session) throws {
        self.session = session
        let s = try session.handle()
        let type = "session"
        guard let ch = libssh2_channel_open_ex(s, type, UInt32(type.utf8.count), Self.window, 32768, nil, 0) else {
            throw session.error(libssh2_session_last_errno(s), "cannot open a channel for SFTP")
        }
        channel = ch
        LiveHandles.channels.add(1)
        do {
            libssh2_channel_handle_extended_data2(ch, LIBSSH2_CHANNEL_EXTENDED_DATA_IGNORE)
            let req = "subsystem", sub = "sftp"
            let rc = libssh2_channel_process_startup(ch, req, UInt32(req.utf8.count), sub, UInt32(sub.utf8.count))
            if rc != 0 {
                var e = session.error(rc, "the server refused the SFTP subsystem")
                if e.kind == .io { e.kind = .connection }
                throw e
            }
            try handshake()
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// A new connection (Session) with its SFTP channel; the session is closed if the channel
    /// cannot be started. `closeWithSession()` ends both.
    public static func connect(_ options: ConnectOptions) throws -> SFTP {
        let s = try Session(options)
        do { return try SFTP(session: s) } catch { s.close(); throw error }
    }

    /// An extra connection (a second stream, `parallel`): it must connect within a few seconds,
    /// whatever `timeout` says, or the work stays on the connections there are (a server that
    /// refuses or ignores a second connection never holds a transfer up). nil when it fails.
    public static let extraConnectTimeout: Double = 5

    public static func connectExtra(_ options: ConnectOptions) -> SFTP? {
        var o = options
        o.timeout = min(options.timeout ?? extraConnectTimeout, extraConnectTimeout)
        guard let sftp = try? SFTP.connect(o) else {
            options.log?("an extra connection could not be opened within \(Int(extraConnectTimeout)) s; going on without it")
            return nil
        }
        sftp.session.timeout = options.timeout
        return sftp
    }

    /// Closes the channel, then its session.
    public func closeWithSession() {
        close()
        session.close()
    }

    /// Files opened on this channel and not closed yet (weakly held): released with the channel.
    private var openFiles: [ObjectIdentifier: WeakFile] = [:]
    final class WeakFile { weak var file: SFTPFile?; init(_ f: SFTPFile) { file = f } }
    func opened(_ f: SFTPFile) { openFiles[ObjectIdentifier(f)] = WeakFile(f) }
    func closed(_ f: SFTPFile) { openFiles[ObjectIdentifier(f)] = nil }

    public var isOpen: Bool { channel != nil && session.isOpen && failure == nil }

    public func close() {
        for w in openFiles.values { w.file?.release() }
        openFiles.removeAll()
        if let ch = channel {
            channel = nil
            LiveHandles.channels.add(-1)
            if session.isOpen {
                libssh2_channel_close(ch)
                libssh2_channel_free(ch)
            }
        }
        if failure == nil { failure = SSHError(.connection, "the connection is closed") }
        failAll()
    }

    // MARK: packets

    private func handshake() throws {
        var w = WireWriter()
        w.u32(5); w.u8(FXP.INIT); w.u32(3)
        out = w.bytes
        try flush()
        let payload = try readPacket()
        let (v, ext) = try protocolChecked { try SFTPMessages.parseVersion(payload) }
        version = v
        // SFTPLUA_IGNORE_EXTENSIONS (comma-separated names): act as if the server lacked them,
        // to exercise the fallbacks against a server that has them.
        let ignored = Set((ProcessInfo.processInfo.environment["SFTPLUA_IGNORE_EXTENSIONS"] ?? "").split(separator: ",").map(String.init))
        for (name, data) in ext where !ignored.contains(name) { extensions[name] = String(decoding: data, as: UTF8.self) }
        if v < 3 { throw SSHError(.connection, "the server speaks SFTP version \(v); version 3 is needed") }
        if extensions["limits@openssh.com"] != nil,
           case .extended(let b) = try call(FXP.EXTENDED, { $0.string("limits@openssh.com") }) {
            let l = try protocolChecked { try SFTPMessages.parseLimits(b) }
            // Our own ceilings: a read reply must fit our largest packet.
            let cap = UInt64(SFTPMessages.maxPacket - 1024)
            if l.read > 0 { readLength = Int(min(max(l.read, 4096), cap)) }
            if l.write > 0 { writeLength = Int(min(max(l.write, 4096), cap)) }
            if l.handles > 0 { maxOpenHandles = Int(min(l.handles, 1 << 20)) }
        }
        session.log("SFTP version \(version); extensions: \(extensions.keys.sorted().joined(separator: ", ")); read \(readLength), write \(writeLength)")
    }

    /// The first packet (VERSION), read before any request is in flight.
    private func readPacket() throws -> ArraySlice<UInt8> {
        var rounds = 0
        while rounds < 10_000 {
            rounds += 1
            if inbuf.count - inHead >= 4 {
                let len = packetLength(at: inHead)
                guard len >= 1, len <= SFTPMessages.maxPacket else {
                    throw broken(SSHError(.connection, "the server broke the SFTP protocol: packet of \(len) bytes"))
                }
                if inbuf.count - inHead >= 4 + len {
                    defer { inHead += 4 + len }
                    return inbuf[(inHead + 4)..<(inHead + 4 + len)]
                }
            }
            try readSome()
        }
        throw broken(SSHError(.connection, "the server sent no SFTP version"))
    }

    private func packetLength(at i: Int) -> Int {
        Int(inbuf[i]) << 24 | Int(inbuf[i + 1]) << 16 | Int(inbuf[i + 2]) << 8 | Int(inbuf[i + 3])
    }

    /// Runs a parse; a violation closes the connection (ConnectionError).
    private func protocolChecked<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let v as ProtocolViolation {
            throw broken(SSHError(.connection, "the server broke the SFTP protocol: \(v.message)"))
        }
    }

    /// Records a fatal failure: the connection is unusable from now on; pending completions fail.
    @discardableResult
    private func broken(_ e: SSHError) -> SSHError {
        if failure == nil { failure = e }
        failAll()
        return e
    }

    private func failAll() {
        guard !pending.isEmpty, !dispatching, let f = failure else { return }
        let all = pending
        pending.removeAll()
        replyBytesInFlight = 0
        requestBytesInFlight = 0
        dataInFlight = 0
        dispatching = true
        defer { dispatching = false }
        for id in all.keys.sorted() { all[id]!.done(.failure(f)) }
    }

    /// True when another request expecting `expect` reply bytes (and carrying `sending` bytes)
    /// fits the budgets.
    /// `data`: the file bytes the request moves (a READ's or a WRITE's length), for bwlimit.
    public func hasRoom(expect: Int = 64, sending: Int = 0, data: Int = 0) -> Bool {
        pending.count < Self.maxRequests && replyBytesInFlight + expect <= Self.replyBudget
            && requestBytesInFlight + sending <= Self.requestBudget && withinRate(data)
    }

    /// Under bwlimit, a READ or WRITE of `data` bytes waits while the file data in flight is a
    /// quarter second of the rate (64 KiB at least; one always goes).
    private func withinRate(_ data: Int) -> Bool {
        guard data > 0, dataInFlight > 0, pacing, let limit = RateLimiter.active else { return true }
        return Double(dataInFlight + data) <= max(65536, limit.bytesPerSecond / 4)
    }
    public var inFlight: Int { pending.count }

    /// Queues a request (written by the next `wait`/`flush`); `done` gets its reply.
    /// `expect`: the most reply bytes it can bring (counted against the window).
    /// `data`: the file bytes a WRITE carries (what `bwlimit` counts).
    @discardableResult
    func send(_ type: UInt8, expect: Int = 256, data: Int = 0, keep: Bool = false, _ body: (inout WireWriter) -> Void,
              done: @escaping Completion) -> UInt32 {
        let limiter = data > 0 ? RateLimiter.active : nil
        if limiter != nil { paceDebt += data }
        let id = nextID
        nextID = nextID == UInt32.max ? 1 : nextID + 1
        var w = WireWriter()
        swap(&w.bytes, &out)
        let start = w.bytes.count
        w.u32(0); w.u8(type); w.u32(id)
        body(&w)
        w.patchU32(at: start, UInt32(w.bytes.count - start - 4))
        let size = w.bytes.count - start
        swap(&w.bytes, &out)
        pending[id] = Pending(expect: expect, sent: size, data: data, limiter: type == FXP.READ ? limiter : nil, keep: keep, done: done)
        dataInFlight += data
        replyBytesInFlight += expect
        requestBytesInFlight += size
        return id
    }

    /// Writes every queued request (blocking; bounded by the budgets).
    public func flush() throws {
        if let failure { failAll(); throw failure }
        guard !out.isEmpty else { return }
        if paceDebt > 0 {
            // bwlimit: what is queued goes out when the rate allows it (never from a completion:
            // `send` only counts, this is the one place that sleeps).
            // Paced also while draining (`waitUnpaced`): WRITEs a close sends are file data too;
            // after Ctrl-C the limiter is stopped and this returns at once.
            let debt = paceDebt
            paceDebt = 0
            RateLimiter.active?.pace(debt)
        }
        guard let ch = channel else { throw broken(SSHError(.connection, "the connection is closed")) }
        var off = 0
        var rounds = 0
        while off < out.count {
            rounds += 1
            let n = out.withUnsafeBytes { b in
                libssh2_channel_write_ex(ch, 0, b.baseAddress!.advanced(by: off).assumingMemoryBound(to: CChar.self), min(b.count - off, 32700))
            }
            if n < 0 {
                out.removeAll()
                throw broken(session.error(Int32(n), "sending SFTP requests"))
            }
            if n == 0 && rounds > 1_000_000 { throw broken(SSHError(.connection, "the server accepts no data")) }
            off += n
        }
        out.removeAll(keepingCapacity: out.capacity <= 2 << 20)
    }

    /// Writes what is queued once it passes 512 KiB (a long run of WRITEs is not held in memory).
    public func flushIfLarge() throws {
        if out.count >= 512 << 10 { try flush() }
    }

    /// Reads what the channel has (blocking until at least one byte, or the session timeout).
    private func readSome() throws {
        guard let ch = channel else { throw broken(SSHError(.connection, "the connection is closed")) }
        let n = scratch.withUnsafeMutableBytes { b in
            libssh2_channel_read_ex(ch, 0, b.baseAddress!.assumingMemoryBound(to: CChar.self), b.count)
        }
        if n < 0 {
            let e = session.error(Int32(n), "waiting for the server")
            if e.kind == .interrupted || e.kind == .timeout {
                // The connection itself is fine: what is in flight is abandoned (its handles closed).
                abandonAll()
                throw e
            }
            throw broken(e)
        }
        if n == 0 {
            if libssh2_channel_eof(ch) != 0 { throw broken(SSHError(.connection, "the server closed the SFTP channel")) }
            return
        }
        if inHead > 0 && inHead == inbuf.count { inbuf.removeAll(keepingCapacity: true); inHead = 0 }
        else if inHead >= 1 << 20 { inbuf.removeFirst(inHead); inHead = 0 }
        inbuf.append(contentsOf: scratch[0..<n])
    }

    /// Hands every complete reply in the buffer to its completion; returns how many.
    private func dispatch() throws -> Int {
        var count = 0
        dispatching = true
        defer { dispatching = false }
        while inbuf.count - inHead >= 4 {
            let len = packetLength(at: inHead)
            guard len >= 5, len <= SFTPMessages.maxPacket else {
                dispatching = false
                throw broken(SSHError(.connection, "the server broke the SFTP protocol: packet of \(len) bytes"))
            }
            guard inbuf.count - inHead >= 4 + len else { break }
            let start = inHead + 4
            inHead += 4 + len
            let parsed: (id: UInt32, reply: Reply)
            do { parsed = try SFTPMessages.parseReply(inbuf[start..<(start + len)]) } catch let v as ProtocolViolation {
                dispatching = false
                throw broken(SSHError(.connection, "the server broke the SFTP protocol: \(v.message)"))
            }
            guard let p = pending.removeValue(forKey: parsed.id) else {
                dispatching = false
                throw broken(SSHError(.connection, "the server broke the SFTP protocol: a reply to no request (id \(parsed.id))"))
            }
            replyBytesInFlight -= p.expect
            requestBytesInFlight -= p.sent
            dataInFlight -= p.data
            if case .data(let d) = parsed.reply, d.count > p.expect {
                dispatching = false
                throw broken(SSHError(.connection, "the server broke the SFTP protocol: \(d.count) bytes of data for a read of \(p.expect)"))
            }
            // bwlimit counts file data, as rclone's and lftp's do (a listing or a tree of tiny
            // files is not slowed by its requests' own bytes). A READ was counted for its whole
            // length when sent: what a short answer or end of file did not bring is given back.
            if let limit = p.limiter {
                if case .data(let d) = parsed.reply { if d.count < p.data { limit.refund(p.data - d.count) } } else { limit.refund(p.data) }
            }
            p.done(.success(parsed.reply))
            count += 1
        }
        return count
    }

    /// How many times requests in flight were abandoned (readers that keep requests in flight
    /// across calls, as `DirectoryReader`, learn theirs were lost).
    public private(set) var abandoned = 0

    /// Replies still owed are dropped when they arrive (after Ctrl-C or a timeout); a handle
    /// that arrives for an abandoned open is closed.
    private func abandonAll() {
        abandoned += 1
        for (id, p) in pending where !p.keep {
            pending[id] = Pending(expect: p.expect, sent: p.sent, data: p.data) { [weak self] r in
                if case .success(.handle(let h)) = r { self?.send(FXP.CLOSE, { $0.string(h) }) { _ in } }
            }
        }
    }

    /// Writes queued requests and handles replies until `condition` holds.
    public func wait(until condition: () -> Bool) throws {
        precondition(!dispatching, "SFTP.wait called from a completion")
        var rounds = 0
        while true {
            try flush()
            if condition() { return }
            if try dispatch() > 0 { continue }
            if pending.isEmpty {
                if condition() { return }
                throw SSHError(.io, "internal error: waiting for a reply with no request in flight")
            }
            rounds += 1
            if rounds > 100_000_000 { throw broken(SSHError(.connection, "the server sends no replies")) }
            try readSome()
        }
    }

    /// Handles replies until at least one more request has room or none is in flight.
    public func waitForRoom(expect: Int = 64, sending: Int = 0, data: Int = 0) throws {
        try wait { hasRoom(expect: expect, sending: sending, data: data) || pending.isEmpty }
    }

    /// Handles every reply still owed.
    public func drain() throws { try wait { pending.isEmpty } }

    /// `wait`, with the data in flight not holding requests back (the replies are being discarded).
    func waitUnpaced(until condition: () -> Bool) throws {
        let was = pacing
        pacing = false
        defer { pacing = was }
        try wait(until: condition)
    }

    /// One request, waited for.
    func call(_ type: UInt8, expect: Int = 256, _ body: (inout WireWriter) -> Void) throws -> Reply {
        if let failure { throw failure }
        var result: Result<Reply, SSHError>?
        send(type, expect: expect, body) { result = $0 }
        try wait { result != nil }
        switch result! {
        case .success(let r): return r
        case .failure(let e): throw e
        }
    }

    // MARK: errors

    /// The error for a status reply; `what` says what was being done.
    public func statusError(_ code: UInt32, _ message: String, _ what: String, path: String?) -> SSHError {
        let subject = path.map { "\(what) \($0.isEmpty ? "''" : $0)" } ?? what   // (an empty path reads as one)
        let detail = message.isEmpty || message.lowercased() == FX.text(code) ? FX.text(code) : "\(FX.text(code)) (\(message))"
        return SSHError(SFTPStatus.kind(code), "\(subject): \(detail)", path: path, code: .sftpStatus(SFTPStatusCode(rawValue: code)))
    }

    /// The error for an unexpected reply.
    func unexpected(_ r: Reply, _ what: String, path: String?) -> SSHError {
        if case .status(let code, let msg) = r { return statusError(code, msg, what, path: path) }
        return broken(SSHError(.connection, "the server broke the SFTP protocol: unexpected reply to \(what)", path: path))
    }

    /// OK, or the status as an error.
    func expectOK(_ r: Reply, _ what: String, path: String?) throws {
        guard case .status(let code, _) = r, code == FX.OK else { throw unexpected(r, what, path: path) }
    }

    // MARK: attributes

    public func stat(_ path: String, followLinks: Bool = true) throws -> FileAttributes {
        let r = try call(followLinks ? FXP.STAT : FXP.LSTAT) { $0.string(path) }
        guard case .attrs(let a) = r else { throw unexpected(r, followLinks ? "stat" : "lstat", path: path) }
        return a
    }

    /// stat that answers nil for any path the server refuses to stat (missing, under a file:
    /// some servers answer a bare FAILURE there, not allowed); only a lost connection raises.
    public func statIfPresent(_ path: String, followLinks: Bool = true) throws -> FileAttributes? {
        do { return try statIfExists(path, followLinks: followLinks) } catch let e as SSHError
            where e.isStatus && (e.kind == .io || e.kind == .permissionDenied) { return nil }
    }

    /// stat that answers nil for a missing path instead of raising.
    public func statIfExists(_ path: String, followLinks: Bool = true) throws -> FileAttributes? {
        do { return try stat(path, followLinks: followLinks) } catch let e as SSHError where e.kind == .fileNotFound { return nil }
    }

    public func setstat(_ path: String, _ attrs: FileAttributes) throws {
        try expectOK(try call(FXP.SETSTAT) { $0.string(path); attrs.encode(&$0) }, "setstat", path: path)
    }

    // MARK: directories

    /// Lists one directory ("." and ".." left out).
    public func list(_ path: String) throws -> [DirEntry] {
        try listEntries(path).map(DirEntry.init)
    }

    /// Lists one directory as the server's entries (names as bytes), in the server's order;
    /// without `longnames` the `ls -l` texts are dropped as they arrive (less memory for big
    /// directories).
    public func listEntries(_ path: String, longnames: Bool = true) throws -> [NameEntry] {
        var result: Result<[NameEntry], SSHError>?
        listAsync(path, longnames: longnames) { result = $0 }
        try wait { result != nil }
        switch result! {
        case .success(let entries): return entries
        case .failure(let e): throw e
        }
    }

    /// Lists a directory without waiting: OPENDIR, READDIR until end of file, CLOSE (not waited
    /// for). Many directories can be listed at once over one connection.
    /// With `each`, entries are handed over a reply at a time (and `done` gets an empty array):
    /// a listing of 100,000 names is never held whole.
    public func listAsync(_ path: String, longnames: Bool = true, each: (([NameEntry]) -> Void)? = nil,
                          done: @escaping (Result<[NameEntry], SSHError>) -> Void) {
        send(FXP.OPENDIR, { $0.string(path) }) { [unowned self] r in
            guard case .success(let reply) = r else { return done(r.map { _ in [] }) }
            guard case .handle(let h) = reply else { return done(.failure(self.unexpected(reply, "cannot list", path: path))) }
            let listing = Listing(handle: h, depth: self.readdirDepth)
            func finish(_ result: Result<[NameEntry], SSHError>) {
                guard !listing.finished else { return }
                listing.finished = true
                self.fireAndForget(FXP.CLOSE) { $0.string(h) }
                done(result)
            }
            // Several READDIRs in flight on the handle where the server answers them in order
            // (OpenSSH): a directory of 100,000 names is not 1,000 round trips one after another.
            func issue() {
                while !listing.finished, !listing.sawEnd, listing.inFlight < listing.depth {
                    listing.inFlight += 1
                    self.send(FXP.READDIR, expect: 64 << 10, { $0.string(h) }) { [unowned self] r in
                        listing.inFlight -= 1
                        guard !listing.finished else { return }
                        switch r {
                        case .failure(let e): return finish(.failure(e))
                        case .success(.name(let batch)):
                            var got: [NameEntry] = []
                            got.reserveCapacity(batch.count)
                            for var e in batch where e.name != [0x2E] && e.name != [0x2E, 0x2E] {
                                if !longnames { e.longname = [] }
                                got.append(e)
                            }
                            listing.count += got.count
                            listing.replies += 1
                            if listing.replies > 10_000_000 {
                                return finish(.failure(SSHError(.io, "cannot list \(path): the server sends no end", path: path)))
                            }
                            if let each { each(got) } else { listing.entries.append(contentsOf: got) }
                            if listing.count > 50_000_000 {
                                return finish(.failure(SSHError(.io, "cannot list \(path): more than 50,000,000 entries", path: path)))
                            }
                            issue()
                        case .success(.status(let code, let msg)):
                            guard code == FX.EOF else { return finish(.failure(self.statusError(code, msg, "cannot list", path: path))) }
                            listing.sawEnd = true
                        case .success(let other):
                            return finish(.failure(self.unexpected(other, "cannot list", path: path)))
                        }
                        if listing.sawEnd && listing.inFlight == 0 { finish(.success(listing.entries)) }
                    }
                }
            }
            issue()
        }
    }

    /// One directory being read.
    private final class Listing {
        let handle: [UInt8]
        let depth: Int
        var entries: [NameEntry] = []
        var count = 0
        var replies = 0
        var inFlight = 0
        var sawEnd = false
        var finished = false
        init(handle: [UInt8], depth: Int) { self.handle = handle; self.depth = depth }
    }

    /// READDIRs in flight per directory: 32 for OpenSSH's server, which handles a handle's
    /// requests strictly in order; 1 elsewhere (a server that answers out of order could
    /// otherwise report the end before a batch).
    public lazy var readdirDepth: Int = session.serverBanner.contains("OpenSSH") ? 32 : 1

    /// paramiko's SFTPServer sets a size by opening the file with "w+" (emptying it) and then
    /// truncating to the size: a SETSTAT with a size loses the file's data there.
    public lazy var sizeChangeEmptiesFile: Bool = session.serverBanner.hasPrefix("SSH-2.0-paramiko")

    /// Can writes of one file arrive out of order (a large upload split over connections)?
    /// rclone serve sftp (and Go servers over a sequential backend) cannot seek: such a write
    /// waits ~30 s and fails. A split upload needs it; otherwise one stream is used.
    /// A refused split upload turns it off for the connection (`Transfer.uploadSplitOrNot`).
    /// `SFTPLUA_ASSUME_OUT_OF_ORDER=1` skips the banner check (tests of that fallback).
    public lazy var acceptsOutOfOrderWrites: Bool = {
        if ProcessInfo.processInfo.environment["SFTPLUA_ASSUME_OUT_OF_ORDER"] == "1" { return true }
        let b = session.serverBanner
        return !(b.hasPrefix("SSH-2.0-rclone") || b == "SSH-2.0-Go")
    }()

    /// Does opening an existing file for writing without truncation keep its content? Known for
    /// OpenSSH's servers; learned once per connection elsewhere (`checkWriteOpenKeepsFile`).
    /// rclone serve sftp empties the file (its VFS rewrites files whole).
    var writeOpenKeepsFile: Bool?

    /// Before an open that writes into an existing file without truncating it ("a", "a+",
    /// "r+"): checks, once per connection, on a scratch file beside it (a temp name mirrors
    /// skip, removed after), that the server keeps a file's content when it is opened so. A
    /// server that empties it gets an IOError here, and the user's file is never opened.
    public func checkWriteOpenKeepsFile(beside path: String) throws {
        if writeOpenKeepsFile == nil && session.serverBanner.contains("OpenSSH") { writeOpenKeepsFile = true }
        if writeOpenKeepsFile == nil {
            let dir = Paths.dirname(path)
            let probe = (dir.isEmpty ? "" : dir.hasSuffix("/") ? dir : dir + "/") + ".sftplua-\(Transfer.shortHash(path + String(UInt64.random(in: 0...UInt64.max)))).part"
            // A directory where no scratch file can be made says nothing: the open goes ahead.
            if let first = try? open(probe, flags: [.write, .create, .exclusive], mode: 0o600) {
                defer { try? unlink(probe) }
                var kept = false
                do {
                    try Array("ab".utf8).withUnsafeBytes { try first.write($0) }
                    try first.close()
                    // Opened again for writing without truncation: still 2 bytes? (Asked of the
                    // open handle before anything is written, so no write goes out of order.)
                    let again = try open(probe, flags: [.write])
                    defer { try? again.close() }
                    guard try again.stat().size == 2 else { throw SSHError(.io, "emptied") }
                    try again.seek(2)
                    try Array("c".utf8).withUnsafeBytes { try again.write($0) }
                    try again.close()
                    let back = try open(probe, flags: .read)
                    defer { try? back.close() }
                    var got = [UInt8](repeating: 0, count: 8)
                    let n = try got.withUnsafeMutableBytes { try back.read(into: $0.baseAddress!, count: 8) }
                    kept = Array(got.prefix(n)) == Array("abc".utf8)
                } catch let e as SSHError where e.kind == .connection || e.kind == .timeout || e.kind == .interrupted {
                    throw e
                } catch {
                    kept = false
                }
                writeOpenKeepsFile = kept
                session.log("write-open check: the server \(kept ? "keeps" : "empties") a file opened for writing without truncation")
            }
        }
        if writeOpenKeepsFile == false {
            throw SSHError(.io, "cannot open \(path) for writing in place: this server (\(session.serverBanner)) empties a file opened for writing without truncation (checked on a scratch file); \(path) was left intact", path: path)
        }
    }

    public func mkdir(_ path: String, mode: Int32 = 0o777) throws {
        let r = try call(FXP.MKDIR) { $0.string(path); FileAttributes(mode: UInt32(mode)).encode(&$0) }
        do { try expectOK(r, "cannot create directory", path: path) } catch var e as SSHError {
            // Servers answer a bare failure when it exists: check.
            if e.kind == .io, (try? statIfExists(path, followLinks: false)) ?? nil != nil {
                e.kind = .fileExists
                e.message = "cannot create directory \(path): it exists"
            }
            throw e
        }
    }

    /// MKDIR without waiting: `done` gets nil on success, else the status as an error.
    public func mkdirAsync(_ path: String, mode: Int32 = 0o777, done: @escaping (SSHError?) -> Void) {
        send(FXP.MKDIR, { $0.string(path); FileAttributes(mode: UInt32(mode)).encode(&$0) }) { [unowned self] r in
            switch r {
            case .failure(let e): done(e)
            case .success(.status(let code, _)) where code == FX.OK: done(nil)
            case .success(let other): done(self.unexpected(other, "cannot create directory", path: path))
            }
        }
    }

    /// Creates every directory at once (pipelined; give one level of a tree at a time, parents
    /// first). Raises the first failure after all replies are in; a failed one is tried again
    /// alone, which says why (and tells an existing directory apart).
    public func mkdirMany(_ paths: [String], mode: Int32 = 0o777) throws {
        var results = [SSHError?](repeating: nil, count: paths.count)
        var done = 0
        for (i, p) in paths.enumerated() {
            if !hasRoom() { try waitForRoom() }
            mkdirAsync(p, mode: mode) { e in results[i] = e; done += 1 }
        }
        try wait { done == paths.count }
        for (i, e) in results.enumerated() {
            guard let e else { continue }
            if e.kind == .connection || e.kind == .timeout || e.kind == .interrupted { throw e }
            try mkdir(paths[i], mode: mode)
        }
    }

    public func rmdir(_ path: String) throws {
        try expectOK(try call(FXP.RMDIR) { $0.string(path) }, "cannot remove directory", path: path)
    }

    public func unlink(_ path: String) throws {
        try expectOK(try call(FXP.REMOVE) { $0.string(path) }, "cannot remove", path: path)
    }

    /// Renames; with `overwrite`, an existing destination file is replaced: atomically with
    /// `posix-rename@openssh.com` where offered, else (SFTP v3's rename refuses to overwrite)
    /// the destination is removed and the rename retried.
    /// `checked`: without `overwrite`, an existing destination is looked for first, so a server
    /// whose rename overwrites (some do) never replaces a file: FileExists, as SFTP v3 says.
    public func rename(_ src: String, _ dst: String, overwrite: Bool = false, checked: Bool = false) throws {
        if checked, !overwrite, src != dst, try statIfExists(dst, followLinks: false) != nil {
            throw SSHError(.fileExists, "cannot rename \(src) to \(dst): it exists", path: dst)
        }
        if overwrite, hasExtension("posix-rename@openssh.com") {
            let r = try call(FXP.EXTENDED) { $0.string("posix-rename@openssh.com"); $0.string(src); $0.string(dst) }
            do { return try expectOK(r, "cannot rename \(src) to", path: dst) } catch var e as SSHError {
                if e.kind == .fileNotFound, (try? statIfExists(src, followLinks: false)) ?? nil == nil { e.path = src }
                throw e
            }
        }
        var r = try call(FXP.RENAME) { $0.string(src); $0.string(dst) }
        // The fallback replaces a file by a file only: a directory is never removed, and never
        // put where a file was (posix-rename refuses both too).
        if overwrite, case .status(let code, _) = r, code != FX.OK, let existing = try statIfExists(dst, followLinks: false), !existing.isDir,
           let source = try statIfExists(src, followLinks: false), !source.isDir {
            try unlink(dst)
            r = try call(FXP.RENAME) { $0.string(src); $0.string(dst) }
        }
        do { try expectOK(r, "cannot rename \(src) to", path: dst) } catch var e as SSHError {
            if e.kind == .io, (try? statIfExists(dst, followLinks: false)) ?? nil != nil {
                e.kind = .fileExists
                e.message = "cannot rename \(src) to \(dst): it exists"
            }
            if e.kind == .fileNotFound, (try? statIfExists(src, followLinks: false)) ?? nil == nil { e.path = src }
            throw e
        }
    }

    /// SYMLINK's argument order. The draft says (linkpath, target); OpenSSH's server reads
    /// (target, linkpath), and other servers use that order for OpenSSH clients only. The first
    /// guess follows the extensions OpenSSH's server announces; every link is then verified and
    /// the order corrected once for the connection.
    public private(set) lazy var symlinkTargetFirst: Bool = {
        // Green End's server says which order it reads.
        switch extensions["symlink-order@rjk.greenend.org.uk"] {
        case "targetpath-linkpath": return true
        case "linkpath-targetpath": return false
        default: return hasExtension("posix-rename@openssh.com") || hasExtension("hardlink@openssh.com")
        }
    }()

    /// Creates `linkpath` pointing at `target` (stored as given), whatever order the server
    /// reads: the result is read back, and a link the server made the wrong way round is removed
    /// before the other order is tried. Never leaves a reversed or stray link.
    public func symlink(target: String, linkpath: String) throws {
        if try statIfExists(linkpath, followLinks: false) != nil {
            throw SSHError(.fileExists, "cannot create symlink \(linkpath): it exists", path: linkpath)
        }
        // Where a reversed request would put a link: at `target`, naming `linkpath`.
        let strayExisted = try statIfExists(target, followLinks: false) != nil
        // Relative paths are the server's working directory's (for comparing with a READLINK
        // that answers resolved paths).
        var home: String?
        func absolute(_ p: String) -> String {
            if p.hasPrefix("/") { return p }
            if home == nil { home = (try? realpath(".")) ?? "" }
            return home!.isEmpty ? p : Paths.join(home!, p)
        }
        var firstError: SSHError?
        for attempt in 0..<2 {
            let targetFirst = symlinkTargetFirst
            let r = try call(FXP.SYMLINK) { w in
                if targetFirst { w.string(target); w.string(linkpath) } else { w.string(linkpath); w.string(target) }
            }
            if case .status(let code, _) = r, code == FX.OK {
                if let read = try? readlink(linkpath), Self.linkNames(read, target, from: absolute(linkpath)) { return }
                // Made the wrong way round: undo it (only a link this request made), switch.
                if !strayExisted, let read = try? readlink(target),
                   read == linkpath || Self.linkNames(read, absolute(linkpath), from: absolute(target)) { try? unlink(target) }
                symlinkTargetFirst.toggle()
                session.log("symlink: the server reads SYMLINK's arguments the other way; switching")
                continue
            }
            var e = unexpected(r, "cannot create symlink", path: linkpath)
            if e.kind == .io, try statIfExists(Paths.dirname(linkpath).isEmpty ? "." : Paths.dirname(linkpath), followLinks: false) == nil {
                e.kind = .fileNotFound
            }
            // A refusal may come from the order (a "target" in a missing directory): the other
            // order once, then the first error stands.
            if attempt == 0, e.kind == .io, !strayExisted {
                firstError = e
                symlinkTargetFirst.toggle()
                continue
            }
            if attempt == 1, firstError != nil { symlinkTargetFirst.toggle() }
            throw firstError ?? e
        }
        if try statIfExists(linkpath, followLinks: false) == nil, let firstError { throw firstError }
        throw SSHError(.io, "cannot create symlink \(linkpath): the server did not make the link as asked", path: linkpath)
    }

    /// Does a link at `link` whose READLINK gave `read` name `target`? Some servers (ProFTPD)
    /// answer READLINK with the target resolved against the link's directory.
    static func linkNames(_ read: String, _ target: String, from link: String) -> Bool {
        if read == target { return true }
        let dir = Paths.dirname(link)
        let resolved = target.hasPrefix("/") || dir.isEmpty ? target : Paths.join(dir, target)
        return read.hasPrefix("/") && Paths.normalize(read) == Paths.normalize(resolved)
    }

    private func pathQuery(_ type: UInt8, _ path: String, _ what: String) throws -> String {
        let r = try call(type, expect: 2 * SFTPMessages.maxString) { $0.string(path) }
        guard case .name(let names) = r, let first = names.first else { throw unexpected(r, what, path: path) }
        return ByteString.string(first.name)
    }

    public func readlink(_ path: String) throws -> String { try pathQuery(FXP.READLINK, path, "cannot read link") }
    public func realpath(_ path: String) throws -> String { try pathQuery(FXP.REALPATH, path, "cannot resolve") }

    // MARK: extensions

    public func hasExtension(_ name: String) -> Bool { extensions[name] != nil }

    /// An extended request; IOError naming the extension when the server lacks it.
    func extended(_ name: String, expect: Int = 256, what: String, path: String?, _ body: (inout WireWriter) -> Void) throws -> Reply {
        guard hasExtension(name) else {
            throw SSHError(.io, "\(what)\(path.map { " " + $0 } ?? ""): the server does not offer \(name)", path: path)
        }
        return try call(FXP.EXTENDED, expect: expect) { $0.string(name); body(&$0) }
    }

    /// `statvfs@openssh.com`: the file system's numbers, in the PROTOCOL file's order.
    public func statvfs(_ path: String) throws -> [(String, UInt64)] {
        let r = try extended("statvfs@openssh.com", what: "statvfs", path: path) { $0.string(path) }
        guard case .extended(let b) = r else { throw unexpected(r, "statvfs", path: path) }
        return try protocolChecked { try SFTPMessages.parseStatvfs(b) }
    }

    /// `hardlink@openssh.com`: `linkpath` becomes another name of `target`.
    public func hardlink(target: String, linkpath: String) throws {
        if try statIfExists(linkpath, followLinks: false) != nil {
            throw SSHError(.fileExists, "cannot create link \(linkpath): it exists", path: linkpath)
        }
        let r = try extended("hardlink@openssh.com", what: "cannot create link", path: linkpath) { $0.string(target); $0.string(linkpath) }
        do { try expectOK(r, "cannot create link", path: linkpath) } catch var e as SSHError {
            if e.kind == .fileNotFound || e.kind == .io, try statIfExists(target, followLinks: false) == nil {
                e.kind = .fileNotFound; e.path = target
                e.message = "cannot create link \(linkpath): \(target) does not exist"
            }
            throw e
        }
    }

    /// `expand-path@openssh.com` (`~` and `~user`), else REALPATH.
    public func expandPath(_ path: String) throws -> String {
        if hasExtension("expand-path@openssh.com") {
            let r = try call(FXP.EXTENDED, expect: 2 * SFTPMessages.maxString) { $0.string("expand-path@openssh.com"); $0.string(path) }
            guard case .name(let n) = r, let first = n.first else { throw unexpected(r, "cannot resolve", path: path) }
            return ByteString.string(first.name)
        }
        return try realpath(path)
    }

    // MARK: files

    public func open(_ path: String, flags: OpenFlags, mode: Int32 = 0o644) throws -> SFTPFile {
        var result: Result<SFTPFile, SSHError>?
        openAsync(path, flags: flags, mode: mode) { result = $0 }
        try wait { result != nil }
        switch result! {
        case .success(let f): return f
        case .failure(var e):
            if e.kind == .io, !flags.contains(.write), let a = try? statIfExists(path), a.isDir {
                e.message = "cannot open \(path): is a directory"
            }
            throw e
        }
    }

    /// OPEN without waiting.
    public func openAsync(_ path: String, flags: OpenFlags, mode: Int32 = 0o644, done: @escaping (Result<SFTPFile, SSHError>) -> Void) {
        let what = flags.contains(.write) ? "cannot open for writing" : "cannot open"
        send(FXP.OPEN, { $0.string(path); $0.u32(flags.rawValue); FileAttributes(mode: UInt32(mode)).encode(&$0) }) { [unowned self] r in
            switch r {
            case .failure(let e): done(.failure(e))
            case .success(.handle(let h)):
                let f = SFTPFile(sftp: self, handle: h, path: path)
                self.opened(f)
                done(.success(f))
            case .success(let other): done(.failure(self.unexpected(other, what, path: path)))
            }
        }
    }

    /// Sends a request and ignores its reply (a CLOSE of a directory, say).
    func fireAndForget(_ type: UInt8, _ body: (inout WireWriter) -> Void) {
        send(type, body) { _ in }
    }
}

/// An open remote file; retains its SFTP. Closed by close() or deinit.
///
/// Reads are pipelined ahead of the caller (a window of READs in flight that grows while the
/// file is read in order); writes go out without waiting for their acknowledgements, which are
/// collected before the file closes (an error is reported by the next call or by close).
/// `@unchecked Sendable`: as its SFTP, used by one thread at a time (the worker that opened it).
public final class SFTPFile: @unchecked Sendable {
    public let sftp: SFTP
    public let path: String
    public let handle: [UInt8]
    private var open = true
    /// The next offset the caller reads or writes.
    private var offset: UInt64 = 0
    /// The file's size when the caller knows it (reads stop there, no end-of-file probe).
    public var knownSize: UInt64?

    /// One READ in flight or answered.
    final class Slot {
        let offset: UInt64, length: Int
        var data: [UInt8]?
        var eof = false
        var error: SSHError?
        var done: Bool { data != nil || eof || error != nil }
        init(offset: UInt64, length: Int) { self.offset = offset; self.length = length }
    }
    private var slots: [Slot] = []
    private var slotHead = 0
    private var nextReadOffset: UInt64 = 0
    private var readAhead = 0
    private var sawEOF = false
    /// Bytes of read-ahead at most (per file; 4 MiB covers a 1 Gbit/s link at 30 ms).
    public static let maxReadAhead = 4 << 20
    /// This file's read-ahead limit (a file split over several connections uses less on each).
    public var readAheadLimit = SFTPFile.maxReadAhead

    /// Writes not yet acknowledged, and the first error among them.
    private var writesInFlight = 0
    private var writeError: SSHError?
    /// Writes in the order they were sent (their end offsets), and whether each is acknowledged:
    /// `acknowledgedThrough` only moves over an unbroken run of acknowledged writes.
    private var writeEnds: [UInt64] = []
    private var writeAcked: [Bool] = []
    private var writeHead = 0
    private var writeSeq = 0
    /// Every byte from the last seek up to this offset is written and acknowledged by the server
    /// (a resume journal may claim them).
    public private(set) var acknowledgedThrough: UInt64 = 0

    init(sftp: SFTP, handle: [UInt8], path: String) {
        self.sftp = sftp
        self.handle = handle
        self.path = path
        LiveHandles.files.add(1)
    }
    deinit { release() }

    /// Frees the handle without reporting (deinit, or the channel closing under it).
    func release() {
        guard open else { return }
        open = false
        LiveHandles.files.add(-1)
        sftp.closed(self)
        if sftp.isOpen { sftp.fireAndForget(FXP.CLOSE) { $0.string(handle) } }
    }

    public var isOpen: Bool { open }

    private func check() throws {
        guard open else { throw SSHError(.io, "attempt to use a closed file", path: path) }
        guard sftp.isOpen else { throw SSHError(.connection, "the connection is closed", path: path) }
        if let e = writeError { writeError = nil; throw e }
    }

    // MARK: reading

    /// Drops the read-ahead (after a seek or a write): replies still owed land in dropped slots.
    private func resetReadAhead() {
        slots.removeAll()
        slotHead = 0
        nextReadOffset = offset
        sawEOF = false
    }

    /// Issues READs until `readAhead` bytes are in flight (or the known size is reached).
    private func issueReads() {
        let length = sftp.readLength
        var guardN = 0
        while !sawEOF, guardN < 4096 {
            guardN += 1
            let buffered = Int(nextReadOffset - offset)
            if buffered >= readAhead { return }
            var n = length
            if let size = knownSize {
                if nextReadOffset >= size { return }
                n = Int(min(UInt64(n), size - nextReadOffset))
            }
            if slots.count > slotHead, !sftp.hasRoom(expect: n + 64, data: n) { return }
            let slot = Slot(offset: nextReadOffset, length: n)
            slots.append(slot)
            nextReadOffset += UInt64(n)
            send(slot)
        }
    }

    private func send(_ slot: Slot) {
        let what = path
        sftp.send(FXP.READ, expect: slot.length + 64, data: slot.length, { $0.string(handle); $0.u64(slot.offset); $0.u32(UInt32(slot.length)) }) { [weak self] r in
            switch r {
            case .failure(let e): slot.error = e
            case .success(.data(let d)): slot.data = Array(d)
            case .success(.status(let code, let msg)):
                if code == FX.EOF { slot.eof = true; self?.sawEOF = true } else {
                    slot.error = self?.sftp.statusError(code, msg, "cannot read", path: what)
                        ?? SSHError(.io, "cannot read \(what): \(FX.text(code))", path: what)
                }
            case .success:
                slot.error = SSHError(.connection, "the server broke the SFTP protocol: unexpected reply to READ", path: what)
            }
        }
    }

    /// Reads up to `count` bytes into `buffer`; 0 at end of file.
    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        try check()
        if slots.count > slotHead, slots[slotHead].offset != offset { resetReadAhead() }
        if slots.count == slotHead { nextReadOffset = offset; sawEOF = false }
        // The window grows with each sequential read, up to the maximum.
        readAhead = min(max(readAheadLimit, sftp.readLength), max(readAhead * 2, count, sftp.readLength))
        var copied = 0
        var rounds = 0
        while copied < count, rounds < 1_000_000 {
            rounds += 1
            issueReads()
            guard slotHead < slots.count else { break }
            let slot = slots[slotHead]
            if !slot.done {
                if copied > 0 { break }   // what is here now
                try sftp.wait { slot.done }
            }
            if let e = slot.error { resetReadAhead(); throw e }
            if slot.eof { slots.removeAll(); slotHead = 0; sawEOF = true; break }
            let data = slot.data!
            slot.data = []   // consumed: its memory goes now, not when the slot is dropped
            slotHead += 1
            if data.isEmpty { slots.removeAll(); slotHead = 0; sawEOF = true; break }
            let n = min(data.count, count - copied)
            data.withUnsafeBytes { buffer.advanced(by: copied).copyMemory(from: $0.baseAddress!, byteCount: n) }
            copied += n
            offset += UInt64(n)
            if n < data.count || data.count < slot.length {
                // A partial use, or the server answered short (it may cap its reads): what is
                // left of this slot is asked again, the later slots stay valid.
                let rest = n < data.count ? Array(data[n...]) : []
                let missingFrom = slot.offset + UInt64(data.count)
                let missing = Int(UInt64(slot.length) - UInt64(data.count))
                var front: [Slot] = []
                if !rest.isEmpty {
                    let s = Slot(offset: offset, length: rest.count)
                    s.data = rest
                    front.append(s)
                }
                if missing > 0 {
                    let s = Slot(offset: missingFrom, length: missing)
                    send(s)
                    front.append(s)
                }
                slots.replaceSubrange(0..<slotHead, with: front)
                slotHead = 0
            }
            if slotHead > 16 { slots.removeFirst(slotHead); slotHead = 0 }
        }
        return copied
    }

    // MARK: writing

    /// Writes all of `bytes` at the current offset; returns once they are queued (each write's
    /// acknowledgement is collected later: `flushWrites()` and `close()` wait for them).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try check()
        if slots.count > slotHead { resetReadAhead() }
        var off = 0
        let length = sftp.writeLength
        var rounds = 0
        while off < bytes.count, rounds < 100_000_000 {
            rounds += 1
            let n = min(length, bytes.count - off)
            if !sftp.hasRoom(sending: n + 64, data: n) { try sftp.waitForRoom(sending: n + 64, data: n) }
            if let e = writeError { writeError = nil; throw e }
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[off..<(off + n)])
            let at = offset
            writesInFlight += 1
            let seq = writeSeq
            writeSeq += 1
            writeEnds.append(at + UInt64(n))
            writeAcked.append(false)
            let what = path
            sftp.send(FXP.WRITE, expect: 256, data: n, { $0.string(handle); $0.u64(at); $0.u32(UInt32(n)); $0.raw(chunk) }) { [weak self] r in
                guard let self else { return }
                self.writesInFlight -= 1
                guard self.writeError == nil else { return }
                switch r {
                case .failure(let e): self.writeError = e
                case .success(.status(let code, let msg)) where code != FX.OK:
                    self.writeError = self.sftp.statusError(code, msg, "cannot write", path: what)
                case .success(.status): self.acknowledged(seq)
                case .success:
                    self.writeError = SSHError(.connection, "the server broke the SFTP protocol: unexpected reply to WRITE", path: what)
                }
            }
            off += n
            offset += UInt64(n)
            try sftp.flushIfLarge()
        }
    }

    /// Write `seq` was acknowledged: move `acknowledgedThrough` over the unbroken run.
    private func acknowledged(_ seq: Int) {
        let i = seq - (writeSeq - writeEnds.count)
        guard i >= 0, i < writeAcked.count else { return }
        writeAcked[i] = true
        while writeHead < writeAcked.count, writeAcked[writeHead] {
            acknowledgedThrough = writeEnds[writeHead]
            writeHead += 1
        }
        if writeHead > 64 {
            writeEnds.removeFirst(writeHead)
            writeAcked.removeFirst(writeHead)
            writeHead = 0
        }
    }

    /// Waits for every write's acknowledgement; throws the first failure.
    public func flushWrites() throws {
        if writesInFlight > 0 { try sftp.wait { writesInFlight == 0 } }
        if let e = writeError { writeError = nil; throw e }
    }

    public func stat() throws -> FileAttributes {
        try check()
        let r = try sftp.call(FXP.FSTAT) { $0.string(handle) }
        guard case .attrs(let a) = r else { throw sftp.unexpected(r, "cannot stat", path: path) }
        return a
    }

    /// FSETSTAT (mode, owner, times, size) on the open file.
    public func setstat(_ attrs: FileAttributes) throws {
        try check()
        try sftp.expectOK(try sftp.call(FXP.FSETSTAT) { $0.string(handle); attrs.encode(&$0) }, "setstat", path: path)
    }

    /// `fsync@openssh.com`: written data reaches the server's disk (after every write is acknowledged).
    public func fsync() throws {
        try flushWrites()
        let h = handle
        let r = try sftp.extended("fsync@openssh.com", what: "cannot fsync", path: path) { $0.string(h) }
        try sftp.expectOK(r, "cannot fsync", path: path)
    }

    public func seek(_ to: UInt64) throws {
        try check()
        // A new run of writes starts here: the one before is acknowledged first, so that
        // `acknowledgedThrough` always describes one unbroken run.
        if writesInFlight > 0 { try flushWrites() }
        writeEnds.removeAll(); writeAcked.removeAll(); writeHead = 0
        acknowledgedThrough = to
        offset = to
        if slots.count > slotHead, slots[slotHead].offset != to { resetReadAhead() }
    }
    public func tell() throws -> UInt64 { try check(); return offset }

    /// Closes after every write is acknowledged; reports a failed write or close (it may mean
    /// the data did not all reach the disk).
    public func close() throws {
        guard open else { return }
        open = false
        LiveHandles.files.add(-1)
        sftp.closed(self)
        guard sftp.isOpen else { return }
        slots.removeAll()
        var closeResult: Result<Reply, SSHError>?
        // CLOSE goes right behind the writes: the server handles one handle's requests in order.
        sftp.send(FXP.CLOSE, { $0.string(handle) }) { closeResult = $0 }
        // Read replies still owed are for the read-ahead just dropped: not paced.
        try sftp.waitUnpaced { closeResult != nil && writesInFlight == 0 }
        if let e = writeError { writeError = nil; throw e }
        try sftp.expectOK(try closeResult!.get(), "cannot close", path: path)
    }
}
