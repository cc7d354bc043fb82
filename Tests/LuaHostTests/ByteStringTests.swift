import ByteString
import Testing

/// Names are bytes: the String mapping must give back every byte sequence exactly, and leave
/// ordinary UTF-8 as it is.
struct ByteStringTests {
    @Test func everyByteSequenceRoundTrips() {
        var rng = SystemRandomNumberGenerator()
        var cases: [[UInt8]] = [[], [0xFF], [0x61, 0xFE], [0xEF, 0x9C, 0x80], [0xEF, 0x9F, 0xBF, 0x78], [0xC0, 0x80],
                                [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], Array("ünï ✓ 😀".utf8)]
        for _ in 0..<3000 {
            let n = Int.random(in: 0...24, using: &rng)
            // Biased toward bytes that make (in)valid UTF-8 and the escape range.
            cases.append((0..<n).map { _ in [0x61, 0x80, 0xBF, 0xC3, 0xEF, 0x9C, 0x9F, 0xF0, 0xFF, UInt8.random(in: 0...255, using: &rng)].randomElement(using: &rng)! })
        }
        for b in cases {
            let s = ByteString.string(b)
            #expect(ByteString.bytes(s) == b, "\(b)")
            ByteString.withCString(s) { p in
                var back: [UInt8] = []
                var i = 0
                while p[i] != 0 { back.append(UInt8(bitPattern: p[i])); i += 1 }
                #expect(back == b.prefix { $0 != 0 })
            }
        }
    }

    @Test func ordinaryTextIsUnchanged() {
        for t in ["", "plain.txt", "ünï ✓ 😀/dir", "a b\tc"] {
            #expect(ByteString.string(Array(t.utf8)) == t)
            #expect(ByteString.bytes(t) == Array(t.utf8))
        }
        // Distinct byte names stay distinct Strings.
        #expect(ByteString.string([0x61, 0xFF]) != ByteString.string([0x61, 0xFE]))
    }
}
