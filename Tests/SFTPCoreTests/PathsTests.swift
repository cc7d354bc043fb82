import ByteString
import SFTPCore
import Testing

struct PathsTests {
    /// Names in `-v` lines and the connection log, as lua/util.lua's `shown` prints them.
    @Test func shownQuotesAndEscapesNamesThatCouldSplitALine() {
        for (name, want) in [("plain.txt", "plain.txt"), ("é", "é"), ("", "\"\""), ("a b", "\"a b\""),
                             ("nl\nx", "\"nl\\nx\""), ("t\tr\r", "\"t\\tr\\r\""), ("q\"b\\", "\"q\\\"b\\\\\""),
                             ("bell\u{7}del\u{7f}", "\"bell\\x07del\\x7f\""),
                             // ByteString holds the byte 0xff (not UTF-8) as U+F7FF
                             ("bad\u{F7FF}", "\"bad\\xff\"")] {
            #expect(Paths.shown(name) == want, "\(name.debugDescription)")
        }
        // A name holding the character U+F70A (bytes EF 9C 8A, valid UTF-8) is shown as those
        // bytes: ByteString reads U+F70A as the raw byte 0x0A, so as it is it would turn back into
        // a newline on the way to Lua.
        let privateUse = ByteString.string([0x61, 0xEF, 0x9C, 0x8A, 0x62] as [UInt8])
        #expect(Paths.shown(privateUse) == "\"a\\xef\\x9c\\x8ab\"")
        #expect(!ByteString.bytes(Paths.shown(privateUse)).contains(0x0A))
        #expect(Paths.oneLine("get a\nb -> c") == "get a\\nb -> c")
        #expect(Paths.oneLine("no control here") == "no control here")
    }

    @Test func dirnameBasenameJoinNormalize() {
        for (p, d, b) in [("a", "", "a"), ("é", "", "é"), ("x/y", "x", "y"), ("/a", "/", "a"), ("/a/b/", "/a", "b"),
                          ("a//b", "a", "b"), ("/", "/", "/"), ("r.csv", "", "r.csv")] {
            #expect(Paths.dirname(p) == d, "dirname(\(p))")
            #expect(Paths.basename(p) == b, "basename(\(p))")
        }
        #expect(Paths.join("", "x") == "x")
        #expect(Paths.join("/a/", "x") == "/a/x")
        #expect(Paths.join("/a", "/abs") == "/abs")
        #expect(Paths.normalize("/a/./b/../c") == "/a/c")
        #expect(Paths.normalize("/../x") == "/x")
    }
}
