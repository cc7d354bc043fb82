import ByteString

/// One side of a mirror, as scanned: every entry in 64 bytes plus its name, so a tree of
/// 100,000 files costs a few MiB, not a table per file.
///
/// Node 0 is the root. Names are bytes, kept in one buffer. After `finish()`, each directory's
/// children are a run of `children`, sorted by name bytes, so walking it gives the order of a
/// depth-first walk of sorted listings and a name is found by binary search.
public struct MirrorTree: Sendable {
    public typealias Kind = FileAttributes.Kind

    struct Node: Sendable {
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

    struct Flags: OptionSet, Sendable {
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
