import CLibssh2
import Foundation

/// OpenSSH known_hosts: plain, `[host]:port`, wildcard and hashed (`|1|salt|hash`) entries,
/// `@revoked` lines. Read with our own parser so that we can tell which key types a host is
/// known by before the handshake (and ask the server for that type).
public struct KnownHosts {
    public struct Entry: Equatable {
        public var patterns: String   // the host field as written
        public var keyType: String
        public var key: String        // base64
        public var marker: String?    // "@revoked", "@cert-authority"
    }
    public var entries: [Entry] = []

    public init(entries: [Entry] = []) { self.entries = entries }

    /// Parses the file at `path`; a missing file is an empty list.
    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { self.init(); return }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SSHError(.hostKey, "cannot read known_hosts file \(path)", path: path)
        }
        self.init(text: String(decoding: data, as: UTF8.self))
    }

    public init(text: String) {
        for raw in text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            var marker: String?
            if let f = fields.first, f.hasPrefix("@") { marker = f; fields.removeFirst() }
            guard fields.count >= 3 else { continue }
            entries.append(Entry(patterns: fields[0], keyType: fields[1], key: fields[2], marker: marker))
        }
    }

    /// The name OpenSSH looks up: `host` for port 22, else `[host]:port`.
    public static func lookupName(host: String, port: Int) -> String {
        port == 22 ? host : "[\(host)]:\(port)"
    }

    /// Entries (not CA lines) whose host field matches host:port.
    public func matching(host: String, port: Int) -> [Entry] {
        let name = Self.lookupName(host: host, port: port)
        return entries.filter { $0.marker != "@cert-authority" && Self.hostField($0.patterns, matches: name) }
    }

    /// Key types the host is known by, in file order, without duplicates.
    public func keyTypes(host: String, port: Int) -> [String] {
        var seen: [String] = []
        for e in matching(host: host, port: port) where e.marker == nil && !seen.contains(e.keyType) {
            seen.append(e.keyType)
        }
        return seen
    }

    public enum Verdict: Equatable {
        case match
        case unknown
        /// The host is known, but by another key of this type (or only by keys of other types).
        case changed(knownTypes: [String])
        case revoked
    }

    public func check(host: String, port: Int, keyType: String, key: String) -> Verdict {
        let found = matching(host: host, port: port)
        if found.contains(where: { $0.marker == "@revoked" && $0.key == key }) { return .revoked }
        let plain = found.filter { $0.marker == nil }
        if plain.contains(where: { $0.keyType == keyType && $0.key == key }) { return .match }
        if plain.isEmpty { return .unknown }
        return .changed(knownTypes: keyTypes(host: host, port: port))
    }

    /// Appends one line for host:port to the file, creating it (and its directory, mode 700).
    /// A failure is a `LocalError` with the errno, of kind HostKeyError (the key could not be
    /// recorded, so the host is not trusted).
    public static func append(path: String, host: String, port: Int, keyType: String, key: String) throws {
        let dir = Paths.dirname(path)
        if !dir.isEmpty {
            let err = makeDirectories(dir, mode: 0o700)
            if err != 0 {
                throw LocalError(.hostKey, "cannot create \(dir) to record the host key: \(String(cString: strerror(err)))", path: dir, errno: err)
            }
        }
        var prefix = ""
        if let existing = FileManager.default.contents(atPath: path), let last = existing.last, last != UInt8(ascii: "\n") {
            prefix = "\n"
        }
        let line = prefix + "\(lookupName(host: host, port: port)) \(keyType) \(key)\n"
        func failed(_ err: Int32) -> LocalError {
            LocalError(.hostKey, "cannot record the host key in \(path): \(String(cString: strerror(err)))", path: path, errno: err)
        }
        let fd = LocalPath.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw failed(errno) }
        defer { close(fd) }
        let bytes = Array(line.utf8)
        let n = write(fd, bytes, bytes.count)
        guard n == bytes.count else { throw failed(n < 0 ? errno : EIO) }
    }

    /// `mkdir -p` with `mode` for the directories it makes (the missing parents first): 0, or the
    /// errno of the failure.
    static func makeDirectories(_ dir: String, mode: mode_t) -> Int32 {
        if LocalPath.isDirectory(dir) { return 0 }
        let parent = Paths.dirname(dir)
        if !parent.isEmpty && parent != dir && LocalPath.info(parent, follow: true) == nil {
            let err = makeDirectories(parent, mode: mode)
            if err != 0 { return err }
        }
        if LocalPath.mkdir(dir, mode) == 0 { return 0 }
        let err = errno
        return err == EEXIST && LocalPath.isDirectory(dir) ? 0 : err
    }

    // MARK: matching

    /// A host field: comma-separated patterns (`*`, `?`, `!negation`) or one hashed name.
    static func hostField(_ field: String, matches name: String) -> Bool {
        if field.hasPrefix("|1|") { return hashedMatches(field, name) }
        var positive = false
        for pat in field.split(separator: ",").map(String.init) {
            if pat.hasPrefix("!") {
                if glob(String(pat.dropFirst()).lowercased(), name.lowercased()) { return false }
            } else if glob(pat.lowercased(), name.lowercased()) {
                positive = true
            }
        }
        return positive
    }

    static func hashedMatches(_ field: String, _ name: String) -> Bool {
        let parts = field.split(separator: "|", omittingEmptySubsequences: true) // ["1", salt, hash]
        guard parts.count == 3, let salt = Data(base64Encoded: String(parts[1])),
              let want = Data(base64Encoded: String(parts[2])) else { return false }
        var out = [UInt8](repeating: 0, count: 20)
        let nameBytes = Array(name.utf8)
        let ok = salt.withUnsafeBytes { s in
            sl_hmac_sha1(s.bindMemory(to: UInt8.self).baseAddress, s.count, nameBytes, nameBytes.count, &out)
        }
        return ok != 0 && Data(out) == want
    }

    /// Glob with `*` and `?` (OpenSSH match_pattern).
    static func glob(_ pattern: String, _ s: String) -> Bool {
        let p = Array(pattern.utf8), t = Array(s.utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == t[ti]) { pi += 1; ti += 1 }
            else if pi < p.count && p[pi] == UInt8(ascii: "*") { star = pi; mark = ti; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
