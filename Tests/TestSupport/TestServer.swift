import Foundation

/// The repository root (for scripts/ and examples/).
public let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// A real OpenSSH sshd on 127.0.0.1, started by scripts/test-sshd in a temp dir and stopped
/// when the test process exits. One per process, shared by the tests (each works in its own
/// remote directory under `root`).
/// `@unchecked Sendable`: immutable after init (the tests share one).
public final class TestServer: @unchecked Sendable {
    public let pid: Int32
    public let host = "127.0.0.1"
    public let port: Int
    public let user: String
    public let dir: String
    /// A HOME whose ~/.ssh has the default identity and a known_hosts that knows the server.
    public let home: String
    public let keys: String
    public let knownHosts: String
    public let root: String
    public let passwordUser: String?
    public let password: String

    public static let shared: TestServer = {
        do { return try TestServer() } catch { fatalError("cannot start the test sshd: \(error)") }
    }()

    /// Starts a server. `extraConfig` lines go into its sshd_config.
    /// `sftpServer` replaces the SFTP subsystem (OpenSSH's internal-sftp) with a command.
    public init(extraConfig: String = "", sftpServer: String? = nil) throws {
        let tmp = try makeTempDir("sshd")
        let r = try runProcess("/bin/bash", [repoRoot.appendingPathComponent("scripts/test-sshd").path, tmp, String(getpid())],
                               env: ["SFTPLUA_TEST_SSHD_EXTRA": extraConfig, "SFTPLUA_TEST_SFTP_SERVER": sftpServer ?? ""], timeout: 60)
        guard r.status == 0 else { throw TestError("scripts/test-sshd failed with \(r.status): \(r.stderr)") }
        let data = Data(r.stdout.utf8)
        var v: [String: String] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { v[parts[0]] = parts[1] }
        }
        guard let pid = v["SFTPLUA_TEST_PID"].flatMap(Int32.init), let port = v["SFTPLUA_TEST_PORT"].flatMap(Int.init) else {
            throw TestError("unexpected test-sshd output")
        }
        self.pid = pid
        self.port = port
        user = v["SFTPLUA_TEST_USER"] ?? "root"
        dir = v["SFTPLUA_TEST_DIR"] ?? tmp
        home = v["SFTPLUA_TEST_HOME"] ?? ""
        keys = v["SFTPLUA_TEST_KEYS"] ?? ""
        knownHosts = v["SFTPLUA_TEST_KNOWN_HOSTS"] ?? ""
        root = v["SFTPLUA_TEST_ROOT"] ?? ""
        passwordUser = (v["SFTPLUA_TEST_PW_USER"] ?? "").isEmpty ? nil : v["SFTPLUA_TEST_PW_USER"]
        password = v["SFTPLUA_TEST_PASSWORD"] ?? ""
        TestServer.remember(pid)
    }

    /// Servers to stop when the test process exits (tests start them concurrently).
    static let startedLock = NSLock()
    // nonisolated(unsafe): only used under `startedLock`.
    nonisolated(unsafe) static var started: [Int32] = []
    static func remember(_ pid: Int32) {
        startedLock.lock(); started.append(pid); startedLock.unlock()
        installExitHook
    }
    static let installExitHook: Void = {
        atexit {
            TestServer.startedLock.lock()
            for p in TestServer.started { kill(p, SIGTERM) }
            TestServer.startedLock.unlock()
        }
    }()

    /// Stops the server and removes its directory (keys, config, remote files), once it is gone.
    public func stop() {
        kill(pid, SIGTERM)
        waitGone(pid)
        removeTree(dir)
    }

    /// A fresh directory on the server (the server runs on this machine, so also a local path).
    public func makeRemoteDir(_ name: String = #function) throws -> String {
        let clean = name.filter { $0.isLetter || $0.isNumber }
        let path = root + "/" + clean + "-" + UUID().uuidString.prefix(6)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// `sftp.connect{...}` options (as Lua source) for the default identity.
    public var connectLua: String {
        "{host = \"\(host)\", port = \(port), known_hosts = \"\(knownHosts)\"}"
    }
}

public struct TestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The one directory under which this test process makes every temp dir (its own and its
/// servers'): `$TMPDIR/sftplua-tests-PID-RANDOM`, made on first use and removed when the
/// process exits (atexit, after the servers are told to stop). Names are short: Lua names a
/// chunk by at most 59 characters of its path, and tests compare messages that name scripts. Tests run in parallel, so nothing under it
/// is removed before then except by its owner (a server's `stop()` removes the server's dir).
/// Programs the tests start get it as TMPDIR (runProcess), so their temp files land there too.
/// What a killed run left behind is swept the next time: a parent whose process is gone and that
/// has not changed for 12 hours.
public let testTempRoot: String = {
    let base = FileManager.default.temporaryDirectory.path
    sweepStaleTempRoots(in: base)
    let path = base + "/sftplua-tests-\(getpid())-\(UUID().uuidString.prefix(4))"
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
        fatalError("cannot make the test temp dir \(path): \(error)")
    }
    atexit { removeTree(testTempRoot) }
    return path
}()

/// Removes a directory tree (symlinks are removed, never followed). A directory the tests left
/// without write permission is opened up first (real directories only: lstat, no links).
public func removeTree(_ path: String) {
    let fm = FileManager.default
    if (try? fm.removeItem(atPath: path)) != nil { return }
    var st = stat()
    guard lstat(path, &st) == 0 else { return }
    if st.st_mode & S_IFMT == S_IFDIR {
        chmod(path, 0o700)
        for sub in (try? fm.subpathsOfDirectory(atPath: path)) ?? [] {
            var s = stat()
            if lstat(path + "/" + sub, &s) == 0, s.st_mode & S_IFMT == S_IFDIR { chmod(path + "/" + sub, 0o700) }
        }
    }
    try? fm.removeItem(atPath: path)
}

/// Removes `sftplua-tests-PID-*` dirs of test processes that are gone (killed before their
/// atexit ran), when untouched for 12 hours (never one a live run, even in another pid
/// namespace sharing /tmp, is still using).
func sweepStaleTempRoots(in base: String) {
    let fm = FileManager.default
    for name in (try? fm.contentsOfDirectory(atPath: base)) ?? [] where name.hasPrefix("sftplua-tests-") {
        let parts = name.split(separator: "-")
        guard parts.count == 4, let pid = Int32(parts[2]), pid != getpid() else { continue }
        if kill(pid, 0) == 0 || errno != ESRCH { continue }
        let path = base + "/" + name
        guard let modified = (try? fm.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
              Date().timeIntervalSince(modified) > 12 * 3600 else { continue }
        removeTree(path)
    }
}

/// A fresh local temp directory (under `testTempRoot`, removed when the test process exits).
public func makeTempDir(_ name: String = "t") throws -> String {
    let path = testTempRoot + "/\(name.filter { $0.isLetter || $0.isNumber }.prefix(24))-\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Waits (at most about 2 s) until process `pid`, not a child of ours, is gone (or a zombie).
func waitGone(_ pid: Int32) {
    for _ in 0..<100 {
        if kill(pid, 0) != 0 { return }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")"), stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z") { return }
        usleep(20_000)
    }
}

/// Runs a program, capturing its output; bounded by `timeout` seconds.
public struct ProcessResult {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    /// Peak resident memory of the process, in KiB (from wait4's rusage).
    public var maxRSSKiB: Int = 0
}

public func runProcess(_ exe: String, _ args: [String], env: [String: String] = [:], cwd: String? = nil,
                       stdin: String? = nil, timeout: Double = 120) throws -> ProcessResult {
    // posix_spawn + waitpid: Foundation's Process can hang reaping children under Swift Testing.
    let io = try makeTempDir("io")
    defer { try? FileManager.default.removeItem(atPath: io) }
    let inPath = io + "/in", outPath = io + "/out", errPath = io + "/err"
    try (stdin ?? "").write(toFile: inPath, atomically: true, encoding: .utf8)
    var e = ProcessInfo.processInfo.environment
    e.removeValue(forKey: "SSH_AUTH_SOCK")
    e["TMPDIR"] = testTempRoot   // their temp files (a connection's log = true) go with ours
    for (k, v) in env { e[k] = v }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdin == nil ? "/dev/null" : inPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    // A working directory through the shell (glibc's addchdir is not visible to Swift here).
    let command = cwd.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0, exe] + args } ?? [exe] + args
    let argv = command.map { strdup($0) } + [nil]
    let envp = e.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
    // No signal blocked: test threads block most signals, and a child that inherited that mask
    // never stops on SIGTERM (ssh-agents and tmux servers of earlier runs lived on).
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK))
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, command[0], &actions, &attr, argv, envp)
    guard rc == 0 else { throw TestError("cannot run \(exe): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    var usage = rusage()
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        let w = wait4(pid, &status, WNOHANG, &usage)
        if w == pid { break }
        if w < 0 && errno != EINTR { throw TestError("waitpid failed") }
        if Date() > deadline {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            throw TestError("\(exe) \(args) did not finish within \(timeout) s")
        }
        usleep(5_000)
    }
    let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let so = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let se = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    var result = ProcessResult(status: code, stdout: so, stderr: se)
    result.maxRSSKiB = Int(usage.ru_maxrss)
    return result
}

/// The built `sftplua` binary (next to the test bundle).
public let sftpluaBinary: String = {
    if let b = ProcessInfo.processInfo.environment["SFTPLUA_BIN"] { return b }
    let dir = Bundle.main.bundleURL
    for candidate in [dir.appendingPathComponent("sftplua"), dir.deletingLastPathComponent().appendingPathComponent("sftplua")]
        where FileManager.default.isExecutableFile(atPath: candidate.path) {
        return candidate.path
    }
    return repoRoot.appendingPathComponent(".build/debug/sftplua").path
}()

extension TestServer {
    /// Runs `sftplua run` on a script written to a temp file, with HOME set to the test home.
    public func runScript(_ source: String, args: [String] = [], env: [String: String] = [:], name: String = "script.lua",
                          cwd: String? = nil, timeout: Double = 120) throws -> ProcessResult {
        let dir = try makeTempDir("script")
        let path = dir + "/" + name
        try source.write(toFile: path, atomically: true, encoding: .utf8)
        var e = ["HOME": home]
        for (k, v) in env { e[k] = v }
        return try runProcess(sftpluaBinary, ["run", path] + args, env: e, cwd: cwd ?? dir, timeout: timeout)
    }
}

/// An SFTP server of another implementation, started from a script in Tests/Fixtures on
/// 127.0.0.1 (a free port it prints), logging in with the shared test identity; stopped with
/// `stop()` or when the test process ends. The script gets: host key, authorized keys, our pid.
/// `@unchecked Sendable`: immutable after init.
public final class ScriptedSFTPServer: @unchecked Sendable {
    public let port: Int
    public let knownHosts: String
    public let dir: String
    private let process: Process

    public init(script: String, identityFrom shared: TestServer) throws {
        dir = try makeTempDir("scripted")
        let key = dir + "/host_ed25519"
        let kg = try runProcess("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f", key], timeout: 30)
        guard kg.status == 0 else { throw TestError("ssh-keygen: \(kg.stderr)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", repoRoot.appendingPathComponent("Tests/Fixtures/" + script).path, key,
                       shared.home + "/.ssh/id_ed25519.pub", String(getpid())]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        process = p
        // The port on the first line (bounded wait).
        var line = Data()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            p.terminate()
            throw TestError("\(script) did not start (is its Python package installed? scripts/setup installs it)")
        }
        self.port = port
        let pub = try String(contentsOfFile: key + ".pub", encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        knownHosts = dir + "/known_hosts"
        try "[127.0.0.1]:\(port) \(pub)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
    }

    /// Stops the server and removes its directory (host key, known_hosts).
    public func stop() {
        if process.isRunning {
            process.terminate()
            for _ in 0..<100 where process.isRunning { usleep(20_000) }
        }
        removeTree(dir)
    }
    deinit { stop() }
}

/// An SFTP server daemon from a Debian package (ProFTPD's mod_sftp, Dropbear, rclone serve
/// sftp), started in the foreground on 127.0.0.1 and a free port, with host keys and its
/// configuration in a temp dir; stopped with `stop()` or when the test process ends.
/// `command(dir, port)` gives the program and its arguments. known_hosts comes from ssh-keyscan.
/// `@unchecked Sendable`: immutable after init.
public final class DaemonSFTPServer: @unchecked Sendable {
    public let port: Int
    public let dir: String
    public let knownHosts: String
    private let pid: pid_t

    public init(name: String, prepare: (String) throws -> Void, command: (String, Int) -> [String]) throws {
        dir = try makeTempDir(name)
        try prepare(dir)
        var lastError = "no attempt"
        for _ in 0..<3 {
            let port = try Self.freePort()
            let argv = command(dir, port)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, dir + "/daemon.log", O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_addopen(&actions, 2, dir + "/daemon.log", O_WRONLY | O_CREAT | O_APPEND, 0o644)
            let cargs = argv.map { strdup($0) } + [nil]
            defer { cargs.forEach { free($0) } }
            // A clean signal state: a daemon that inherited a blocked SIGCHLD (test threads block
            // signals) never sees its session's command end.
            var attr = posix_spawnattr_t()
            posix_spawnattr_init(&attr)
            defer { posix_spawnattr_destroy(&attr) }
            var empty = sigset_t(), defaults = sigset_t()
            sigemptyset(&empty)
            sigemptyset(&defaults)
            for sig in [SIGCHLD, SIGPIPE, SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, sig) }
            posix_spawnattr_setsigmask(&attr, &empty)
            posix_spawnattr_setsigdefault(&attr, &defaults)
            posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            var p: pid_t = 0
            let rc = posix_spawnp(&p, argv[0], &actions, &attr, cargs, environ)
            guard rc == 0 else { throw TestError("cannot run \(argv[0]): \(String(cString: strerror(rc)))") }
            // Up to 10 s for the port to answer with an SSH banner.
            var up = false
            for _ in 0..<200 where !up {
                usleep(50_000)
                var st: Int32 = 0
                if waitpid(p, &st, WNOHANG) == p { break }
                up = Self.answers(port)
            }
            if up {
                self.port = port
                pid = p
                TestServer.remember(p)
                let scan = try runProcess("/usr/bin/ssh-keyscan", ["-p", String(port), "127.0.0.1"], timeout: 30)
                knownHosts = dir + "/known_hosts"
                try scan.stdout.write(toFile: knownHosts, atomically: true, encoding: .utf8)
                return
            }
            kill(p, SIGKILL)
            var st: Int32 = 0
            waitpid(p, &st, 0)
            lastError = (try? String(contentsOfFile: dir + "/daemon.log", encoding: .utf8)) ?? "no log"
        }
        throw TestError("\(name) did not start: \(lastError)")
    }

    /// Stops the daemon and removes its directory (keys, configuration, log).
    public func stop() {
        defer { removeTree(dir) }
        kill(pid, SIGTERM)
        var st: Int32 = 0
        for _ in 0..<100 { if waitpid(pid, &st, WNOHANG) != 0 { return }; usleep(20_000) }
        kill(pid, SIGKILL)
        waitpid(pid, &st, 0)
    }

    /// A port free on 127.0.0.1 just now.
    static func freePort() throws -> Int {
        let (fd, port) = try loopbackSocket(listening: false)
        close(fd)
        return port
    }

    /// Does 127.0.0.1:port accept a connection and send an SSH banner?
    static func answers(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return false }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buf, buf.count)
        return n >= 4 && buf.starts(with: Array("SSH-".utf8))
    }
}

/// The servers of the matrix that run as daemons.
public enum MatrixDaemons {
    /// ProFTPD's mod_sftp, logging in as root with the shared identity (RFC 4716 keys file).
    public static func proftpd(identityFrom shared: TestServer) throws -> DaemonSFTPServer {
        try DaemonSFTPServer(name: "proftpd", prepare: { dir in
            for (t, extra) in [("rsa", ["-b", "2048"]), ("ecdsa", [])] {
                let r = try runProcess("/usr/bin/ssh-keygen", ["-q", "-t", t] + extra + ["-m", "PEM", "-N", "", "-f", "\(dir)/host_\(t)"], timeout: 30)
                guard r.status == 0 else { throw TestError("ssh-keygen: \(r.stderr)") }
            }
            let e = try runProcess("/usr/bin/ssh-keygen", ["-e", "-f", shared.home + "/.ssh/id_ed25519.pub"], timeout: 30)
            try e.stdout.write(toFile: "\(dir)/\(shared.user).keys", atomically: true, encoding: .utf8)
        }, command: { dir, port in
            let conf = """
            ServerType standalone
            DefaultAddress 127.0.0.1
            SocketBindTight on
            Port \(port)
            User \(shared.user)
            Group \(shared.user == "root" ? "root" : shared.user)
            PidFile \(dir)/proftpd.pid
            ScoreboardFile \(dir)/scoreboard
            DelayTable none
            WtmpLog off
            UseReverseDNS off
            RootLogin on
            AllowOverwrite on
            UseFtpUsers off
            RequireValidShell off
            AuthOrder mod_auth_unix.c
            LoadModule mod_sftp.c
            <IfModule mod_sftp.c>
              SFTPEngine on
              SFTPHostKey \(dir)/host_rsa
              SFTPHostKey \(dir)/host_ecdsa
              SFTPAuthMethods publickey
              SFTPAuthorizedUserKeys file:\(dir)/%u.keys
              SFTPLog \(dir)/sftp.log
              SFTPCompression off
            </IfModule>
            """
            try? conf.write(toFile: dir + "/proftpd.conf", atomically: true, encoding: .utf8)
            return ["proftpd", "-n", "-q", "-c", dir + "/proftpd.conf"]
        })
    }

    /// Dropbear with OpenSSH's sftp-server, logging in as the password account (Dropbear reads
    /// authorized keys only from the account's home).
    public static func dropbear() throws -> DaemonSFTPServer {
        try DaemonSFTPServer(name: "dropbear", prepare: { dir in
            let r = try runProcess("/usr/bin/dropbearkey", ["-t", "ed25519", "-f", dir + "/host_ed25519"], timeout: 30)
            guard r.status == 0 else { throw TestError("dropbearkey: \(r.stderr)") }
        }, command: { dir, port in
            ["dropbear", "-F", "-E", "-m", "-w", "-r", dir + "/host_ed25519", "-p", "127.0.0.1:\(port)", "-P", dir + "/dropbear.pid"]
        })
    }

    /// rclone serve sftp over the whole file system (its VFS without a cache, as by default).
    public static func rclone(identityFrom shared: TestServer) throws -> DaemonSFTPServer {
        try DaemonSFTPServer(name: "rclone", prepare: { dir in
            let r = try runProcess("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", dir + "/host_ed25519"], timeout: 30)
            guard r.status == 0 else { throw TestError("ssh-keygen: \(r.stderr)") }
            try FileManager.default.copyItem(atPath: shared.home + "/.ssh/id_ed25519.pub", toPath: dir + "/authorized_keys")
        }, command: { dir, port in
            ["rclone", "serve", "sftp", "/", "--addr", "127.0.0.1:\(port)", "--key", dir + "/host_ed25519",
             "--authorized-keys", dir + "/authorized_keys", "--config", dir + "/rclone.conf", "--log-level", "ERROR"]
        })
    }
}

/// A TCP socket bound to 127.0.0.1 on a port the system picks (listening, if asked): its
/// descriptor and port. The caller closes it.
public func loopbackSocket(listening: Bool) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestError("socket: \(String(cString: strerror(errno)))") }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && (!listening || listen(fd, 4) == 0) && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { close(fd); throw TestError("cannot bind a loopback port") }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}
