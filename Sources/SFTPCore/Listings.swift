import ByteString

// Listings beyond one directory at a time: many directories at once for tree walks (remote:
// pipelined; local: readdir), names of a big listing in one buffer, and a directory read as the
// caller asks (`c:listdir_iter`).

/// Lists many directories of one side for a tree walk.
public protocol TreeLister {
    /// Lists `dirs`; `each(index, entries)` gets each directory's entries, possibly in several
    /// parts, never from inside a network completion (it may run Lua). Each directory that cannot
    /// be listed is reported to `failed`, in index order, once the others are done (entries of
    /// it handed over before the failure, if any, are to be dropped by the caller).
    func list(_ dirs: [String], each: (Int, [NameEntry]) throws -> Void, failed: (Int, Error) -> Void) throws
    /// The kind of a failure of this side's walk (the depth limit): IOError for a server,
    /// OSError for the local file system.
    var failureKind: ErrorKind { get }
}

extension TreeLister {
    public var failureKind: ErrorKind { .io }

    /// The same, throwing the failure of the first directory (by index) that cannot be listed.
    public func list(_ dirs: [String], each: (Int, [NameEntry]) throws -> Void) throws {
        var first: Error?
        try list(dirs, each: each) { _, e in if first == nil { first = e } }
        if let first { throw first }
    }
}

/// Remote directories, listed at once (pipelined over the connection; at most 256 open).
public struct RemoteLister: TreeLister {
    public let sftp: SFTP
    public init(_ sftp: SFTP) { self.sftp = sftp }

    public func list(_ dirs: [String], each: (Int, [NameEntry]) throws -> Void, failed: (Int, Error) -> Void) throws {
        let n = dirs.count
        var queue: [(Int, [NameEntry])] = []
        var errors: [Int: SSHError] = [:]
        var next = 0, done = 0
        let most = max(1, min(256, (sftp.maxOpenHandles ?? 512) / 2))
        var rounds = 0
        while (done < n || !queue.isEmpty), rounds < 100_000_000 {
            rounds += 1
            while next < n, next - done < most, sftp.hasRoom(expect: 64 << 10) {
                let i = next
                next += 1
                sftp.listAsync(dirs[i], each: { queue.append((i, $0)) }) { r in
                    if case .failure(let e) = r { errors[i] = e }
                    done += 1
                }
            }
            if !queue.isEmpty {
                let q = queue
                queue.removeAll()
                for (i, part) in q where errors[i] == nil { try each(i, part) }
                continue
            }
            if done < n {
                let target = done + 1
                try sftp.wait { done >= target || !queue.isEmpty }
            }
        }
        for (i, e) in errors.sorted(by: { $0.key < $1.key }) { failed(i, e) }
    }
}

/// Local directories, one after another (a local listing costs no round trip).
public struct LocalLister: TreeLister {
    public init() {}
    public var failureKind: ErrorKind { .os }
    public func list(_ dirs: [String], each: (Int, [NameEntry]) throws -> Void, failed: (Int, Error) -> Void) throws {
        for (i, d) in dirs.enumerated() {
            try Interrupt.checkpoint()   // Ctrl-C between directories of a big local tree
            let entries: [NameEntry]
            do { entries = try LocalPath.entries(d) } catch let e as LocalError { failed(i, e); continue }
            try each(i, entries)
        }
    }
}

/// Many names in one buffer (4 bytes of overhead each), to sort a listing whose entries went
/// elsewhere as they came (a listing of 100,000 names is never held twice).
public struct NameArena {
    var bytes: [UInt8] = []
    var ends: [UInt32] = []
    public init() {}
    public var count: Int { ends.count }
    public mutating func append(_ name: [UInt8]) {
        bytes.append(contentsOf: name)
        ends.append(UInt32(truncatingIfNeeded: bytes.count))
    }
    public func name(_ i: Int) -> ArraySlice<UInt8> {
        bytes[(i == 0 ? 0 : Int(ends[i - 1]))..<Int(ends[i])]
    }
    /// Positions in the order of their names, by bytes: `order[k]` is the k-th name's position.
    public func sortedOrder() -> [Int32] {
        var order = [Int32](0..<Int32(ends.count))
        order.sort { name(Int($0)).lexicographicallyPrecedes(name(Int($1))) }
        return order
    }
}

/// A directory read as the caller asks for entries (`c:listdir_iter`, paramiko's
/// `listdir_iter`): READDIRs go out only to refill a small buffer (a few in flight where the
/// server answers in order), so a directory of any size costs a few hundred entries of memory.
/// Entries come in the server's order; "." and ".." are left out.
public final class DirectoryReader {
    let sftp: SFTP
    public let path: String
    private var handle: [UInt8]?
    private var buffer: [NameEntry] = []
    private var next = 0
    private var inFlight = 0
    private var sawEnd = false
    private var failure: SSHError?
    /// `sftp.abandoned` when the requests in flight were sent.
    private var generation = 0

    public init(_ sftp: SFTP, path: String) throws {
        self.sftp = sftp
        self.path = path
        let r = try sftp.call(FXP.OPENDIR) { $0.string(path) }
        guard case .handle(let h) = r else {
            if case .status(let code, let msg) = r { throw sftp.statusError(code, msg, "cannot list", path: path) }
            throw sftp.unexpected(r, "cannot list", path: path)
        }
        handle = h
    }

    deinit { close() }

    /// The next entry, or nil at the end (the directory is then closed).
    public func read() throws -> NameEntry? {
        var rounds = 0
        while next >= buffer.count {
            rounds += 1
            if rounds > 10_000_000 { failure = failure ?? SSHError(.io, "cannot list \(path): the server sends no end", path: path) }
            buffer.removeAll(keepingCapacity: true)
            next = 0
            if inFlight > 0 && sftp.abandoned != generation {
                // A timeout or Ctrl-C (in this loop or another call) dropped the READDIRs in
                // flight: their names are lost, so the listing cannot go on.
                failure = failure ?? SSHError(.io, "cannot list \(path): the listing was interrupted (a timeout or Ctrl-C dropped its requests)", path: path)
            }
            if let failure { close(); throw failure }
            if sawEnd && inFlight == 0 { close(); return nil }
            guard handle != nil else { return nil }
            refill()
            try sftp.wait { !self.buffer.isEmpty || self.failure != nil || (self.sawEnd && self.inFlight == 0) }
        }
        defer { next += 1 }
        return buffer[next]
    }

    private func refill() {
        guard let h = handle else { return }
        if inFlight == 0 { generation = sftp.abandoned }
        while !sawEnd, failure == nil, inFlight < min(4, sftp.readdirDepth) {
            inFlight += 1
            sftp.send(FXP.READDIR, expect: 64 << 10, { $0.string(h) }) { [weak self] r in
                guard let self else { return }
                self.inFlight -= 1
                switch r {
                case .failure(let e): self.failure = self.failure ?? e
                case .success(.name(let batch)):
                    self.buffer.append(contentsOf: batch.lazy.filter { $0.name != [0x2E] && $0.name != [0x2E, 0x2E] })
                case .success(.status(let code, let msg)):
                    if code == FX.EOF { self.sawEnd = true } else {
                        self.failure = self.failure ?? self.sftp.statusError(code, msg, "cannot list", path: self.path)
                    }
                case .success(let other): self.failure = self.failure ?? self.sftp.unexpected(other, "cannot list", path: self.path)
                }
            }
        }
    }

    /// Closes the directory handle (not waited for); later reads give nil.
    public func close() {
        guard let h = handle else { return }
        handle = nil
        sftp.fireAndForget(FXP.CLOSE) { $0.string(h) }
    }
}
