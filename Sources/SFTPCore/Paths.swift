import ByteString

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

extension Paths {
    /// A name as `-v` lines and the connection log print it (the same form as lua/util.lua's
    /// `shown`, which plans use): as it is, unless it holds a space, a quote, a backslash, a
    /// control byte (below 0x20, or 0x7f), bytes that are not UTF-8 or a private-use character
    /// of ByteString's escape range (U+F700...U+F7FF); then in double quotes with
    /// those escaped (`\n`, `\r`, `\t`, `\"`, `\\`, `\xHH`), so a name can never split or forge a
    /// line, or blur where it ends.
    public static func shown(_ name: String) -> String {
        let bytes = ByteString.bytes(name)
        var out = ""
        var quote = bytes.isEmpty
        var it = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var at = 0
        var rounds = 0
        while rounds <= bytes.count {
            rounds += 1
            switch parser.parseScalar(from: &it) {
            case .valid(let encoded):
                at += encoded.count
                let s = Unicode.UTF8.decode(encoded)
                if (0xF700...0xF7FF).contains(s.value) {
                    // ByteString's escape range: appended as a scalar it would turn back into one
                    // raw byte at the edge (U+F70A into a newline), so it is shown as its bytes.
                    for b in encoded { out += hex(b) }
                    quote = true
                } else if let esc = escape(s) { out += esc; quote = true } else { out.unicodeScalars.append(s) }
                if s == " " { quote = true }
            case .error(let length):
                for b in bytes[at..<at + length] { out += hex(b) }
                at += length
                quote = true
            case .emptyInput:
                return quote ? "\"" + out + "\"" : out
            }
        }
        return quote ? "\"" + out + "\"" : out
    }

    /// A log line with any control byte left in it escaped as `shown` escapes it (names are
    /// `shown` where they are put in; this keeps any other text from splitting the line).
    public static func oneLine(_ line: String) -> String {
        func control(_ u: Unicode.Scalar) -> Bool { u.value < 0x20 || u.value == 0x7f }
        guard line.unicodeScalars.contains(where: control) else { return line }
        var out = ""
        for u in line.unicodeScalars {
            if control(u), let esc = escape(u) { out += esc } else { out.unicodeScalars.append(u) }
        }
        return out
    }

    /// How `shown` writes a scalar that needs escaping (nil: as it is).
    private static func escape(_ s: Unicode.Scalar) -> String? {
        switch s {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        case "\"": return "\\\""
        case "\\": return "\\\\"
        default: return s.value < 0x20 || s.value == 0x7f ? hex(UInt8(s.value)) : nil
        }
    }

    private static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return "\\x" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)])
    }
}
