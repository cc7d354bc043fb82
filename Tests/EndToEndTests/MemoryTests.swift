import Foundation
import Testing
import TestSupport

/// Transfers stream: getting and putting a 1 GiB file keeps sftplua under 64 MiB resident.
struct MemoryTests {
    let server = TestServer.shared

    @Test func oneGiBEachWayStaysUnder64MiB() throws {
        let dir = try server.makeRemoteDir()
        // A sparse 1 GiB file on the server side: cheap to create, real bytes on the wire.
        let fd = open(dir + "/big", O_WRONLY | O_CREAT, 0o644)
        #expect(fd >= 0)
        #expect(ftruncate(fd, 1 << 30) == 0)
        close(fd)
        let local = try makeTempDir("mem")
        defer { try? FileManager.default.removeItem(atPath: local); try? FileManager.default.removeItem(atPath: dir) }
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        c:get("\(dir)/big", "big")
        local a = c:put("big", "\(dir)/big-up")
        print(a.st_size)
        """, cwd: local, timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "1073741824\n")
        #expect(r.maxRSSKiB > 0)
        #expect(r.maxRSSKiB < 64 * 1024, "peak RSS \(r.maxRSSKiB) KiB")
        print("peak RSS for get+put of 1 GiB: \(r.maxRSSKiB) KiB")
    }
}
