/// `.gitignore`-style patterns over relative paths, matched on bytes (names are bytes).
///
/// A pattern without `/` matches a name at any depth (it is taken as `**/pattern`); one with `/`
/// matches the whole relative path (a leading `/` only anchors it). A trailing `/` matches
/// directories only. `*` and `?` stay within one path segment, `[...]` is a class (`!` or `^`
/// negates, `a-z` a range), `**/` is zero or more directories, `**` elsewhere anything, and `\x`
/// a literal x. Matching backtracks, bounded by memoizing (pattern position, path position).
public struct Glob: Sendable {
    public let text: String
    let pattern: [UInt8]
    let directoriesOnly: Bool

    public init(_ text: String, bytes: [UInt8]) {
        self.text = text
        var p = bytes[...]
        var dirOnly = false
        if p.last == UInt8(ascii: "/") {
            dirOnly = true
            while p.last == UInt8(ascii: "/") { p = p.dropLast() }
        }
        let anchored = p.contains(UInt8(ascii: "/"))
        while p.first == UInt8(ascii: "/") { p = p.dropFirst() }
        pattern = anchored ? Array(p) : Array("**/".utf8) + p
        directoriesOnly = dirOnly
    }

    /// Does the pattern match `path` (relative, `/`-separated)?
    public func matches(_ path: [UInt8], isDirectory: Bool) -> Bool {
        if directoriesOnly && !isDirectory { return false }
        return Glob.match(pattern, path)
    }

    static let star = UInt8(ascii: "*"), slash = UInt8(ascii: "/"), question = UInt8(ascii: "?")
    static let open = UInt8(ascii: "["), close = UInt8(ascii: "]"), backslash = UInt8(ascii: "\\")
    static let bang = UInt8(ascii: "!"), caret = UInt8(ascii: "^"), dash = UInt8(ascii: "-")

    static func match(_ p: [UInt8], _ s: [UInt8]) -> Bool {
        var matcher = Matcher(pattern: p, path: s)
        return matcher.m(0, 0)
    }

    /// One pattern matched against one path: backtracking, each (pattern position, path
    /// position) decided once.
    private struct Matcher {
        let p: [UInt8]
        let s: [UInt8]
        let width: Int
        /// 0 unknown, 1 no, 2 yes: one cell per (pattern position, path position).
        var memo: [UInt8]

        init(pattern: [UInt8], path: [UInt8]) {
            p = pattern
            s = path
            width = path.count + 1
            memo = [UInt8](repeating: 0, count: (pattern.count + 1) * width)
        }

        /// Does the pattern from `pi` match the path from `si`? (Remembered.)
        mutating func m(_ pi: Int, _ si: Int) -> Bool {
            let cell = pi * width + si
            if memo[cell] != 0 { return memo[cell] == 2 }
            let r = step(pi, si)
            memo[cell] = r ? 2 : 1
            return r
        }

        /// The pattern's next token (at `pi`) against the path at `si`, then the rest.
        mutating func step(_ pi: Int, _ si: Int) -> Bool {
            guard pi < p.count else { return si == s.count }
            let c = p[pi]
            if c == star { return stars(pi, si) }
            guard si < s.count else { return false }
            let ch = s[si]
            switch c {
            case question:
                return ch != slash && m(pi + 1, si + 1)
            case open:
                return bracket(pi, si)
            case backslash where pi + 1 < p.count:
                return ch == p[pi + 1] && m(pi + 2, si + 1)
            default:
                return ch == c && m(pi + 1, si + 1)
            }
        }

        /// `*` at `pi`: `**/` (zero or more directories), `**` (anything), or `*` (anything
        /// within the current segment).
        mutating func stars(_ pi: Int, _ si: Int) -> Bool {
            if pi + 1 < p.count && p[pi + 1] == star {
                let rest = pi + 2
                if rest < p.count && p[rest] == slash {
                    // `**/`: here, or after any later "/".
                    if m(rest + 1, si) { return true }
                    for k in si..<s.count where s[k] == slash { if m(rest + 1, k + 1) { return true } }
                    return false
                }
                for k in si...s.count { if m(rest, k) { return true } }
                return false
            }
            for k in si...s.count {
                if m(pi + 1, k) { return true }
                if k < s.count && s[k] == slash { break }
            }
            return false
        }

        /// `[` at `pi` against the path's byte at `si`: a class (`!` or `^` negates, `a-z` a
        /// range) up to its `]`, or a literal `[` when none closes it.
        mutating func bracket(_ pi: Int, _ si: Int) -> Bool {
            let ch = s[si]
            guard pi + 2 <= p.count, let end = p[min(pi + 2, p.count)...].firstIndex(of: close) else {
                return ch == open && m(pi + 1, si + 1)
            }
            var body = p[(pi + 1)..<end]
            var negated = false
            if let f = body.first, f == bang || f == caret { negated = true; body = body.dropFirst() }
            let b = Array(body)
            var hit = false, i = 0
            while i < b.count {
                if i + 2 < b.count && b[i + 1] == dash {
                    if ch >= b[i] && ch <= b[i + 2] { hit = true }
                    i += 3
                } else {
                    if ch == b[i] { hit = true }
                    i += 1
                }
            }
            return ch != slash && hit != negated && m(end + 1, si + 1)
        }
    }
}

/// Several patterns: a path is matched when any of them matches.
public struct GlobSet: Sendable {
    public let globs: [Glob]
    public init(_ globs: [Glob]) { self.globs = globs }

    public func matches(_ path: [UInt8], isDirectory: Bool) -> Bool {
        globs.contains { $0.matches(path, isDirectory: isDirectory) }
    }
}
