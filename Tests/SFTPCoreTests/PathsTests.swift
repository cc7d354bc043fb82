import SFTPCore
import Testing

struct PathsTests {
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
