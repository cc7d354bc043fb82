// Names are bytes. A Swift String must be valid Unicode, but a file name (local or remote) is any
// bytes but NUL and '/'. So every name that passes through Swift is held in a String made by
// `ByteString.string(bytes)`, which is lossless: valid UTF-8 stays as it is, and every byte that
// is not part of valid UTF-8 becomes one private-use scalar U+F700 + byte. Bytes whose UTF-8
// decodes to U+F700...U+F7FF themselves are escaped the same way, so the mapping can always be
// undone: `ByteString.bytes(ByteString.string(b)) == b` for every b. At each edge back to bytes
// (Lua strings, the SFTP wire, the local file system) `bytes`/`withCString` restore them.
// No Foundation: the fuzz target builds this file with the protocol parser.

public enum ByteString {
    static let escapeBase: UInt32 = 0xF700

    /// The lossless String for `bytes`.
    public static func string<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        // Fast path: ASCII, or UTF-8 without 0xEF (no U+F700-U+F7FF) that decodes cleanly.
        var plain = true
        for b in bytes where b >= 0x80 { plain = false; break }
        if plain { return String(decoding: bytes, as: UTF8.self) }
        let a = Array(bytes)
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i < a.count {
            if let (s, n) = decodeOne(a, i), !(escapeBase...escapeBase + 0xFF).contains(s.value) {
                scalars.append(s)
                i += n
            } else {
                scalars.append(Unicode.Scalar(escapeBase + UInt32(a[i]))!)
                i += 1
            }
        }
        return String(scalars)
    }

    /// The bytes `string` was made from (any other String: its UTF-8).
    public static func bytes(_ s: String) -> [UInt8] {
        var escaped = false
        for b in s.utf8 where b == 0xEF { escaped = true; break }
        if !escaped { return Array(s.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        for u in s.unicodeScalars {
            if (escapeBase...escapeBase + 0xFF).contains(u.value) {
                out.append(UInt8(u.value - escapeBase))
            } else {
                out.append(contentsOf: String(u).utf8)
            }
        }
        return out
    }

    /// `body` with the NUL-terminated bytes of `s` (for the C calls of the local file system).
    public static func withCString<R>(_ s: String, _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        var b = bytes(s)
        b.append(0)
        return try b.withUnsafeBufferPointer { p in
            try p.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }

    /// One well-formed UTF-8 scalar at `i` (no overlongs, no surrogates, at most U+10FFFF).
    static func decodeOne(_ a: [UInt8], _ i: Int) -> (Unicode.Scalar, Int)? {
        let b0 = a[i]
        if b0 < 0x80 { return (Unicode.Scalar(b0), 1) }
        let n: Int, min: UInt32, first: UInt32
        switch b0 {
        case 0xC2...0xDF: n = 2; min = 0x80; first = UInt32(b0 & 0x1F)
        case 0xE0...0xEF: n = 3; min = 0x800; first = UInt32(b0 & 0x0F)
        case 0xF0...0xF4: n = 4; min = 0x10000; first = UInt32(b0 & 0x07)
        default: return nil
        }
        guard i + n <= a.count else { return nil }
        var v = first
        for k in 1..<n {
            let b = a[i + k]
            guard b & 0xC0 == 0x80 else { return nil }
            v = v << 6 | UInt32(b & 0x3F)
        }
        guard v >= min, v <= 0x10FFFF, !(0xD800...0xDFFF).contains(v), let s = Unicode.Scalar(v) else { return nil }
        return (s, n)
    }
}
