import Foundation
import Testing
import TestSupport

/// Leaks (issue 10): a connect / transfer / error / close loop (bench/leak-loop.lua) returns to
/// its file descriptor count and live libssh2 object counts. `bench/leaks` runs it 10,000 times.
struct LeakTests {
    let server = TestServer.shared

    @Test func connectTransferErrorCloseLoopLeaksNothing() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("leak")
        let r = try runProcess(sftpluaBinary, ["run", repoRoot.path + "/bench/leak-loop.lua", "100", remote],
                               env: ["HOME": server.home, "SFTPLUA_HOST": "127.0.0.1", "SFTPLUA_PORT": String(server.port)],
                               cwd: work, timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        let v = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\t").compactMap { Int($0) }
        try #require(v.count == 5, "\(r.stdout)")
        #expect(v[0] == 0, "file descriptors grew by \(v[0])")
        #expect(v[1] == 0 && v[2] == 0 && v[3] == 0, "live sessions/channels/files: \(v[1]) \(v[2]) \(v[3])")
        if ProcessInfo.processInfo.environment["SFTPLUA_ASAN"] == nil {   // ASan's quarantine keeps freed memory
            #expect(v[4] < 8 * 1024, "RSS grew by \(v[4]) KiB over 100 iterations")
        }
    }
}
