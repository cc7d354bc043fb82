import Foundation
import Testing
import TestSupport

/// Every recipe in examples/ runs against the test server.
struct ExampleTests {
    let server = TestServer.shared

    @Test func quickstart() throws {
        let dir = try server.makeRemoteDir()
        let work = try makeTempDir("ex")
        let r = try runProcess(sftpluaBinary, ["run", repoRoot.path + "/examples/quickstart.lua", dir],
                               env: ["HOME": server.home, "SFTPLUA_HOST": "127.0.0.1", "SFTPLUA_PORT": String(server.port)], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("downloaded it back: 19 bytes, identical"))
        #expect(r.stdout.contains("(kind FileNotFound)"))
    }

    @Test func everyExampleHasATest() throws {
        let examples = try FileManager.default.contentsOfDirectory(atPath: repoRoot.path + "/examples").filter { $0.hasSuffix(".lua") }
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
        for e in examples { #expect(source.contains("examples/\(e)"), "examples/\(e) is not run by a test") }
    }
}
