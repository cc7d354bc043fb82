import ByteString

/// One side of a mirror, as scanned: every entry in 64 bytes plus its name, so a tree of
/// 100,000 files costs a few MiB, not a table per file.
///
/// Node 0 is the root. Names are bytes, kept in one buffer. After `finish()`, each directory's
/// children are a run of `children`, sorted by name bytes, so walking it gives the order of a
/// depth-first walk of sorted listings and a name is found by binary search.
public struct MirrorTree {
    public typealias Kind = FileAttributes.Kind

    struct Node {
        var parent: Int32
        var nameStart: UInt32
        var nameLength: UInt32
        var kind: UInt8
        var flags: Flags
        var has: UInt8
        var mode: UInt32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
        var size: UInt64 = 0
        var atime: UInt64 = 0
        var mtime: UInt64 = 0
        var firstChild: Int32 = 0
        var childCount: Int32 = 0
    }

    struct Flags: OptionSet {
        let rawValue: UInt8
        /// Excluded, filtered, or a link or special file on the source: never copied, never
        /// deleted, not descended.
        static let protected = Flags(rawValue: 1)
        /// One of sftplua's temp files (an interrupted transfer): not part of the tree.
        static let temp = Flags(rawValue: 2)
        /// A directory holding something protected: never deleted.
        static let keep = Flags(rawValue: 4)
        /// A target directory where the source has a file: left alone, with its contents.
        static let conflict = Flags(rawValue: 8)
        /// A source directory that will hold a copied file (with `include`).
        static let needed = Flags(rawValue: 16)
    }

    static let hasSize: UInt8 = 1, hasMode: UInt8 = 2, hasOwner: UInt8 = 4, hasTimes: UInt8 = 8

    var nodes: [Node]
    var names: [UInt8] = []
    var children: [Int32] = []

    public static let root: Int32 = 0

    public init() {
        nodes = [Node(parent: -1, nameStart: 0, nameLength: 0, kind: Self.code(.dir), flags: [], has: 0)]
    }

    public var count: Int { nodes.count - 1 }

    static func code(_ k: Kind) -> UInt8 {
        switch k { case .file: return 0; case .dir: return 1; case .link: return 2; case .other: return 3 }
    }

    @discardableResult
    mutating func add(_ e: NameEntry, parent: Int32, flags: Flags = []) -> Int32 {
        let a = e.attributes
        var n = Node(parent: parent, nameStart: UInt32(names.count), nameLength: UInt32(e.name.count),
                     kind: Self.code(a.kind), flags: flags, has: 0)
        if let s = a.size { n.size = s; n.has |= Self.hasSize }
        if let m = a.mode { n.mode = m; n.has |= Self.hasMode }
        if let u = a.uid, let g = a.gid { n.uid = u; n.gid = g; n.has |= Self.hasOwner }
        if let at = a.atime, let mt = a.mtime { n.atime = at; n.mtime = mt; n.has |= Self.hasTimes }
        names.append(contentsOf: e.name)
        nodes.append(n)
        return Int32(nodes.count - 1)
    }

    // What a node holds.
    public func kind(_ i: Int32) -> Kind {
        switch nodes[Int(i)].kind { case 0: return .file; case 1: return .dir; case 2: return .link; default: return .other }
    }
    public func size(_ i: Int32) -> UInt64? { let n = nodes[Int(i)]; return n.has & Self.hasSize != 0 ? n.size : nil }
    public func mtime(_ i: Int32) -> UInt64? { let n = nodes[Int(i)]; return n.has & Self.hasTimes != 0 ? n.mtime : nil }
    public func atime(_ i: Int32) -> UInt64? { let n = nodes[Int(i)]; return n.has & Self.hasTimes != 0 ? n.atime : nil }
    public func mode(_ i: Int32) -> UInt32? { let n = nodes[Int(i)]; return n.has & Self.hasMode != 0 ? n.mode : nil }
    public func owner(_ i: Int32) -> (uid: UInt32, gid: UInt32)? {
        let n = nodes[Int(i)]; return n.has & Self.hasOwner != 0 ? (n.uid, n.gid) : nil
    }
    func flags(_ i: Int32) -> Flags { nodes[Int(i)].flags }
    mutating func mark(_ i: Int32, _ f: Flags) { nodes[Int(i)].flags.formUnion(f) }

    func name(_ i: Int32) -> ArraySlice<UInt8> {
        let n = nodes[Int(i)]
        return names[Int(n.nameStart)..<Int(n.nameStart + n.nameLength)]
    }

    /// The path relative to the root, `/`-separated.
    public func path(_ i: Int32) -> [UInt8] {
        var parts: [ArraySlice<UInt8>] = []
        var n = i
        while n > 0 { parts.append(name(n)); n = nodes[Int(n)].parent }
        var out: [UInt8] = []
        for (k, p) in parts.reversed().enumerated() {
            if k > 0 { out.append(UInt8(ascii: "/")) }
            out.append(contentsOf: p)
        }
        return out
    }

    /// Directories between the node and the root.
    public func depth(_ i: Int32) -> Int {
        var d = 0, n = nodes[Int(i)].parent
        while n > 0 { d += 1; n = nodes[Int(n)].parent }
        return d
    }

    /// Marks every directory above `i` as holding something that must stay.
    mutating func keepAncestors(of parent: Int32) {
        var p = parent
        while p > 0, !flags(p).contains(.keep) { mark(p, .keep); p = nodes[Int(p)].parent }
    }

    /// Groups and sorts the children of every directory (call once the scan is complete).
    mutating func finish() {
        var ids = [Int32](1..<Int32(nodes.count))
        let nodes = self.nodes, names = self.names
        ids.sort { a, b in
            let x = nodes[Int(a)], y = nodes[Int(b)]
            if x.parent != y.parent { return x.parent < y.parent }
            return names[Int(x.nameStart)..<Int(x.nameStart + x.nameLength)]
                .lexicographicallyPrecedes(names[Int(y.nameStart)..<Int(y.nameStart + y.nameLength)])
        }
        children = ids
        var k = 0
        while k < ids.count {
            let p = self.nodes[Int(ids[k])].parent
            var end = k
            while end < ids.count && self.nodes[Int(ids[end])].parent == p { end += 1 }
            self.nodes[Int(p)].firstChild = Int32(k)
            self.nodes[Int(p)].childCount = Int32(end - k)
            k = end
        }
    }

    /// The children of a directory, sorted by name.
    public func children(of dir: Int32) -> ArraySlice<Int32> {
        let n = nodes[Int(dir)]
        return children[Int(n.firstChild)..<Int(n.firstChild + n.childCount)]
    }

    /// The child of `dir` named `name`, if any (binary search; after `finish()`).
    func child(of dir: Int32, named name: ArraySlice<UInt8>) -> Int32? {
        guard dir >= 0 else { return nil }
        let c = children(of: dir)
        var lo = c.startIndex, hi = c.endIndex
        while lo < hi {
            let mid = (lo + hi) / 2
            let n = self.name(c[mid])
            if n.lexicographicallyPrecedes(name) { lo = mid + 1 } else { hi = mid }
        }
        return lo < c.endIndex && self.name(c[lo]).elementsEqual(name) ? c[lo] : nil
    }

    /// Every node under the root, in the order of a depth-first walk of sorted listings (a
    /// directory, then its contents); `body` returns false to skip a directory's contents.
    public func walk(_ body: (Int32) throws -> Bool) rethrows {
        var stack: [(dir: Int32, next: Int)] = [(Self.root, 0)]
        while var top = stack.popLast() {
            let c = children(of: top.dir)
            guard top.next < c.count else { continue }
            let i = c[c.startIndex + top.next]
            top.next += 1
            stack.append(top)
            if try body(i), kind(i) == .dir, nodes[Int(i)].childCount > 0 { stack.append((i, 0)) }
        }
    }
}

/// Lists many directories of one side for a tree walk.
public protocol TreeLister {
    /// Lists `dirs`; `each(index, entries)` gets each directory's entries, possibly in several
    /// parts, never from inside a network completion (it may run Lua). Throws the failure of the
    /// first directory (by index) that cannot be listed.
    func list(_ dirs: [String], each: (Int, [NameEntry]) throws -> Void) throws
}

/// Remote directories, listed at once (pipelined over the connection; at most 256 open).
public struct RemoteLister: TreeLister {
    public let sftp: SFTP
    public init(_ sftp: SFTP) { self.sftp = sftp }

    public func list(_ dirs: [String], each: (Int, [NameEntry]) throws -> Void) throws {
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
        if let first = errors.keys.min(), let e = errors[first] { throw e }
    }
}

/// Local directories, one after another (a local listing costs no round trip).
public struct LocalLister: TreeLister {
    public init() {}
    public func list(_ dirs: [String], each: (Int, [NameEntry]) throws -> Void) throws {
        for (i, d) in dirs.enumerated() { try each(i, try LocalPath.entries(d)) }
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
        while next >= buffer.count, rounds < 10_000_000 {
            rounds += 1
            buffer.removeAll(keepingCapacity: true)
            next = 0
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
