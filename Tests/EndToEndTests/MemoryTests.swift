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
        -- The process's own peak RSS (VmHWM). wait4's ru_maxrss is not used: with posix_spawn's
        -- vfork it also counts the test runner's memory at the moment of the spawn.
        print(io.open("/proc/self/status"):read("a"):match("VmHWM:%s*(%d+)"))
        """, cwd: local, timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "1073741824")
        let peak = Int(lines.last ?? "") ?? Int.max
        #expect(peak > 0)
        // Under AddressSanitizer (scripts/asan) freed memory sits in its quarantine: no RSS bound.
        if ProcessInfo.processInfo.environment["SFTPLUA_ASAN"] == nil {
            #expect(peak < 64 * 1024, "peak RSS \(peak) KiB")
        }
        print("peak RSS for get+put of 1 GiB: \(peak) KiB")
    }
}
