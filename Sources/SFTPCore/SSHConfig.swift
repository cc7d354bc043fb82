import Foundation

/// Host aliases from `~/.ssh/config`, resolved exactly as OpenSSH resolves them: the installed
/// `ssh -G` is asked (HostName, User, Port, IdentityFile, with Include, Match and wildcards), not
/// a parser of ours. `~` is `$HOME` here, so the config is `$HOME/.ssh/config`, and `~` and
/// relative paths in the answer are taken against `$HOME` (OpenSSH would use the passwd home).
public enum SSHConfig {
    public struct Answer: Equatable {
        public var hostname: String?
        public var user: String?
        public var port: Int?
        public var identityFiles: [String] = []
    }

    /// What `$HOME/.ssh/config` sets for `host`, or nil when there is no config (or no ssh).
    /// Only settings the config changes are returned (compared with `ssh -F /dev/null -G`).
    public static func lookup(_ host: String, home: String) -> Answer? {
        let config = home + "/.ssh/config"
        guard !host.hasPrefix("-"), !host.isEmpty, FileManager.default.isReadableFile(atPath: config) else { return nil }
        let (path, cleanup) = rewrittenIncludes(config, home: home)
        defer { cleanup() }
        guard let with = query(["-F", path, "-G", host]), let base = query(["-F", "/dev/null", "-G", host]) else { return nil }
        var a = Answer()
        if let h = with["hostname"]?.first, h != base["hostname"]?.first { a.hostname = h }
        if let u = with["user"]?.first, u != base["user"]?.first { a.user = u }
        if let p = with["port"]?.first, p != base["port"]?.first, let n = Int(p) { a.port = n }
        if let ids = with["identityfile"], ids != (base["identityfile"] ?? []) {
            a.identityFiles = ids.map { expand($0, home: home) }
        }
        return a
    }

    /// `~/x` and relative paths against `home`.
    static func expand(_ p: String, home: String) -> String {
        if p == "~" { return home }
        if p.hasPrefix("~/") { return home + p.dropFirst(1) }
        if !p.hasPrefix("/") { return home + "/" + p }
        return p
    }

    /// OpenSSH resolves a relative `Include` against the passwd home's ~/.ssh; sftplua's `~` is
    /// `$HOME`. When the config has Include lines, a copy with those paths made absolute
    /// (against `$HOME/.ssh`) is handed to ssh instead.
    static func rewrittenIncludes(_ config: String, home: String) -> (String, () -> Void) {
        guard let text = try? String(contentsOfFile: config, encoding: .utf8),
              text.range(of: "include", options: .caseInsensitive) != nil else { return (config, {}) }
        var changed = false
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.lowercased().hasPrefix("include"), trimmed.count > 7 else { return String(line) }
            let rest = trimmed.dropFirst(7)
            guard let first = rest.first, first == " " || first == "\t" || first == "=" else { return String(line) }
            guard let args = splitArguments(rest.drop { $0 == " " || $0 == "\t" || $0 == "=" }) else { return String(line) }
            changed = true
            return "Include " + args.map { s -> String in
                let path: String
                if s == "~" { path = home } else if s.hasPrefix("~/") { path = home + s.dropFirst(1) }
                else if s.hasPrefix("/") { path = s } else { path = home + "/.ssh/" + s }
                return quoted(path)
            }.joined(separator: " ")
        }
        guard changed else { return (config, {}) }
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("sftplua-sshconfig-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        guard FileManager.default.createFile(atPath: tmp, contents: Data(lines.joined(separator: "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            return (config, {})
        }
        return (tmp, { try? FileManager.default.removeItem(atPath: tmp) })
    }

    /// The arguments of a config line as OpenSSH splits them: whitespace between arguments,
    /// double or single quotes around one with spaces, a backslash before a quote, a backslash
    /// or a space, `#` starting a comment. nil for an unterminated quote (the line is left as it is).
    static func splitArguments(_ s: Substring) -> [String]? {
        var out: [String] = [], cur = "", inArg = false
        var quote: Character?
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            let next = s.index(after: i)
            if c == "\\", next < s.endIndex, ["\"", "'", "\\", " "].contains(s[next]) {
                cur.append(s[next]); inArg = true; i = s.index(after: next); continue
            }
            if let q = quote {
                if c == q { quote = nil } else { cur.append(c) }
            } else if c == "\"" || c == "'" {
                quote = c; inArg = true
            } else if c == " " || c == "\t" {
                if inArg { out.append(cur); cur = ""; inArg = false }
            } else if c == "#" && !inArg {
                break
            } else {
                cur.append(c); inArg = true
            }
            i = next
        }
        if quote != nil { return nil }
        if inArg { out.append(cur) }
        return out
    }

    /// One argument in double quotes, for ssh to read back exactly.
    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// Runs `ssh ARGS` and parses `key value` lines (keys lowercased; repeated keys collected).
    static func query(_ args: [String]) -> [String: [String]]? {
        guard let (status, out) = run(["ssh"] + args), status == 0 else { return nil }
        var d: [String: [String]] = [:]
        for line in out.split(separator: "\n") {
            guard let sp = line.firstIndex(of: " ") else { continue }
            d[line[..<sp].lowercased(), default: []].append(String(line[line.index(after: sp)...]))
        }
        return d
    }

    /// posix_spawnp with stdout captured through a pipe, stdin and stderr on /dev/null; bounded
    /// to 10 s.
    static func run(_ argv: [String]) -> (Int32, String)? {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        let cargs = argv.map { strdup($0) } + [nil]
        defer { cargs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, nil, cargs, environ)
        Foundation.close(fds[1])
        guard rc == 0 else { Foundation.close(fds[0]); return nil }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 200)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { continue }
            let n = Foundation.read(fds[0], &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
            if data.count > 1 << 20 { break }
        }
        Foundation.close(fds[0])
        var status: Int32 = 0
        if Date() >= deadline { kill(pid, SIGKILL) }
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, String(decoding: data, as: UTF8.self))
    }
}

extension ConnectOptions {
    /// Applies `~/.ssh/config` for `host` (an alias or a real name); explicit options win:
    /// `portGiven` says whether `port` was set by the caller. Returns what was applied, for logs.
    @discardableResult
    public mutating func applySSHConfig(portGiven: Bool) -> [String] {
        guard let a = SSHConfig.lookup(host, home: home) else { return [] }
        var applied: [String] = []
        if let h = a.hostname { applied.append("HostName \(h)"); host = h }
        if !portGiven, let p = a.port { applied.append("Port \(p)"); port = p }
        if username == nil, let u = a.user { applied.append("User \(u)"); username = u }
        if privateKey == nil, password == nil,
           let k = a.identityFiles.first(where: { FileManager.default.isReadableFile(atPath: $0) }) {
            applied.append("IdentityFile \(k)")
            privateKey = k
        }
        return applied
    }
}
