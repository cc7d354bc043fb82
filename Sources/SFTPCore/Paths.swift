/// POSIX path pieces on '/'-separated strings, byte-exact (Foundation's NSString path methods
/// trap on some one-character names on Linux, and normalise more than a path API should).
public enum Paths {
    /// "a/b/c" -> "a/b", "/a" -> "/", "a" -> "" (no directory part), "a/b/" -> "a".
    public static func dirname(_ p: String) -> String {
        var s = Substring(p)
        while s.count > 1 && s.hasSuffix("/") { s = s.dropLast() }
        guard let i = s.lastIndex(of: "/") else { return "" }
        if i == s.startIndex { return "/" }
        var d = s[..<i]
        while d.count > 1 && d.hasSuffix("/") { d = d.dropLast() }
        return String(d)
    }

    /// "a/b/c" -> "c", "a/b/" -> "b", "/" -> "/".
    public static func basename(_ p: String) -> String {
        var s = Substring(p)
        while s.count > 1 && s.hasSuffix("/") { s = s.dropLast() }
        guard let i = s.lastIndex(of: "/"), s != "/" else { return String(s) }
        return String(s[s.index(after: i)...])
    }

    /// Joins with one '/' ("" + b = b).
    public static func join(_ a: String, _ b: String) -> String {
        if a.isEmpty { return b }
        if b.hasPrefix("/") { return b }
        return a.hasSuffix("/") ? a + b : a + "/" + b
    }

    /// Resolves "." and ".." lexically in an absolute path.
    public static func normalize(_ p: String) -> String {
        var out: [Substring] = []
        for part in p.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if !out.isEmpty { out.removeLast() }; continue }
            out.append(part)
        }
        return (p.hasPrefix("/") ? "/" : "") + out.joined(separator: "/")
    }
}
