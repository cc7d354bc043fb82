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
        // Example tests live here, in MirrorTests.swift and in WatchTests.swift.
        let source = try String(contentsOfFile: #filePath, encoding: .utf8)
            + String(contentsOfFile: repoRoot.path + "/Tests/EndToEndTests/MirrorTests.swift", encoding: .utf8)
            + String(contentsOfFile: repoRoot.path + "/Tests/EndToEndTests/WatchTests.swift", encoding: .utf8)
        for e in examples { #expect(source.contains("examples/\(e)"), "examples/\(e) is not run by a test") }
    }
}

extension ExampleTests {
    @Test func newerThan() throws {
        let dir = try server.makeRemoteDir()
        let work = try makeTempDir("newer")
        try FileManager.default.createDirectory(atPath: dir + "/2023/q4", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/2024", withIntermediateDirectories: true)
        let old = Date(timeIntervalSince1970: 1_690_000_000)   // 2023-07-22
        let new = Date(timeIntervalSince1970: 1_710_000_000)   // 2024-03-09
        for (path, date) in [("2023/q4/old.csv", old), ("2023/q4/new.csv", new), ("2024/a b.csv", new), ("top-old.txt", old)] {
            try "data \(path)".write(toFile: dir + "/" + path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: dir + "/" + path)
        }
        let r = try runProcess(sftpluaBinary, ["run", repoRoot.path + "/examples/newer_than.lua", dir, work + "/out", "2024-01-01"],
                               env: ["HOME": server.home, "SFTPLUA_HOST": "127.0.0.1", "SFTPLUA_PORT": String(server.port)], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("2 file(s) fetched"))
        #expect(r.stdout.contains("2 older than 2024-01-01 skipped"))
        #expect(FileManager.default.fileExists(atPath: work + "/out/2023/q4/new.csv"))
        #expect(FileManager.default.fileExists(atPath: work + "/out/2024/a b.csv"))
        #expect(!FileManager.default.fileExists(atPath: work + "/out/2023/q4/old.csv"))
        #expect(!FileManager.default.fileExists(atPath: work + "/out/top-old.txt"))
        let m = try FileManager.default.attributesOfItem(atPath: work + "/out/2024/a b.csv")[.modificationDate] as! Date
        #expect(m == new)
    }
}

extension ExampleTests {
    @Test func syncagent() throws {
        let dir = try server.makeRemoteDir()
        let work = try makeTempDir("agent")
        try "on the server\n".write(toFile: dir + "/remote.txt", atomically: true, encoding: .utf8)
        let r = try runProcess(sftpluaBinary, ["run", repoRoot.path + "/examples/syncagent.lua", dir],
                               env: ["HOME": server.home, "SFTPLUA_HOST": "127.0.0.1", "SFTPLUA_PORT": String(server.port)], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("pushed 2 file(s), 23 bytes; 0 left in the queue"))
        #expect(r.stdout.contains("remote.txt (fetched): on the server"))
        #expect(r.stdout.contains("not_anywhere.txt: does not exist on local or remote"))
        #expect(r.stdout.contains("cache: 3 file(s), 0 queued, 0 stale"))
        #expect(FileManager.default.contents(atPath: dir + "/docs/readme.txt") == Data("read me first\n".utf8))
        #expect(FileManager.default.fileExists(atPath: work + "/cache/remote.txt"))
    }
}
