import Foundation

/// A TCP relay on 127.0.0.1 between sftplua and the test sshd that injects real network faults:
/// cut a connection after N bytes, stall it (bytes stop flowing, the socket stays open), or slow
/// it down. Loopback only. Settings apply to connections from the moment they are set.
/// `@unchecked Sendable`: every mutable field is used under `lock`.
public final class FaultRelay: @unchecked Sendable {
    public let port: Int
    let target: Int
    private let listener: Int32
    private let lock = NSLock()
    private var _cutAfter: Int?
    private var _stalled = false
    private var _bytesPerSecond: Int?
    private var links: [Link] = []
    private var stopped = false
    /// Connections accepted so far.
    public private(set) var accepted = 0

    /// One relayed connection. `@unchecked Sendable`: its mutable fields are read and written
    /// only under the relay's `lock`.
    final class Link: @unchecked Sendable {
        let client: Int32
        let server: Int32
        var bytes = 0
        var closed = false
        var silent = false
        init(client: Int32, server: Int32) { self.client = client; self.server = server }
    }

    public init(to targetPort: Int) throws {
        target = targetPort
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("relay: socket failed") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0, listen(fd, 64) == 0 else { close(fd); throw TestError("relay: bind/listen failed") }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: bound.sin_port))
        let t = Thread { [weak self] in self?.acceptLoop() }
        t.start()
    }

    deinit { stop() }

    /// Cut each connection once it has carried this many bytes (both directions); nil: never.
    public var cutAfter: Int? {
        get { lock.lock(); defer { lock.unlock() }; return _cutAfter }
        set { lock.lock(); _cutAfter = newValue; lock.unlock() }
    }
    /// Connections accepted after this many are silent forever (accepted, never answered): a
    /// server that ignores a second connection.
    public var silentAfter: Int? {
        get { lock.lock(); defer { lock.unlock() }; return _silentAfter }
        set { lock.lock(); _silentAfter = newValue; lock.unlock() }
    }
    private var _silentAfter: Int?

    /// While true, no byte moves (connections stay open: the peer sees a silent server).
    public var stalled: Bool {
        get { lock.lock(); defer { lock.unlock() }; return _stalled }
        set { lock.lock(); _stalled = newValue; lock.unlock() }
    }
    /// Throttle each direction of each connection to about this rate; nil: full speed.
    public var bytesPerSecond: Int? {
        get { lock.lock(); defer { lock.unlock() }; return _bytesPerSecond }
        set { lock.lock(); _bytesPerSecond = newValue; lock.unlock() }
    }

    /// Bytes carried by each connection so far, in the order they were accepted.
    public func bytesPerConnection() -> [Int] {
        lock.lock(); defer { lock.unlock() }
        return links.map(\.bytes)
    }

    /// A known_hosts file that knows the relay's port as the server (same host key).
    public func knownHosts(copying server: TestServer) throws -> String {
        let lines = try String(contentsOfFile: server.knownHosts, encoding: .utf8).split(separator: "\n")
        let out = lines.map { $0.replacingOccurrences(of: "[127.0.0.1]:\(server.port) ", with: "[127.0.0.1]:\(port) ") }
        let path = try makeTempDir("kh") + "/known_hosts"
        try (out.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Cuts every open connection now.
    public func cutAll() {
        lock.lock(); let ls = links; lock.unlock()
        for l in ls { cut(l) }
    }

    public func stop() {
        lock.lock()
        if stopped { lock.unlock(); return }
        stopped = true
        let ls = links
        lock.unlock()
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for l in ls { cut(l) }
    }

    private func cut(_ l: Link) {
        lock.lock()
        if l.closed { lock.unlock(); return }
        l.closed = true
        lock.unlock()
        shutdown(l.client, Int32(SHUT_RDWR))
        shutdown(l.server, Int32(SHUT_RDWR))
    }

    private func acceptLoop() {
        for _ in 0..<100_000 {
            let c = accept(listener, nil, nil)
            if c < 0 {
                lock.lock(); let done = stopped; lock.unlock()
                if done { return }
                if errno == EINTR { continue }
                return
            }
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(target).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if rc != 0 { close(c); close(s); continue }
            let link = Link(client: c, server: s)
            lock.lock(); links.append(link); accepted += 1; link.silent = _silentAfter.map { accepted > $0 } ?? false; lock.unlock()
            let group = DispatchGroup()
            for (from, to) in [(c, s), (s, c)] {
                group.enter()
                Thread { [weak self] in
                    self?.pump(link, from: from, to: to)
                    group.leave()
                }.start()
            }
            Thread {
                group.wait()
                close(c); close(s)
            }.start()
        }
    }

    private func pump(_ link: Link, from: Int32, to: Int32) {
        var buf = [UInt8](repeating: 0, count: 32768)
        for _ in 0..<100_000_000 {
            lock.lock()
            let closed = link.closed, stall = _stalled || link.silent, rate = _bytesPerSecond, limit = _cutAfter, used = link.bytes
            lock.unlock()
            if closed { return }
            if stall { usleep(20_000); continue }
            var p = pollfd(fd: from, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, 100)
            if ready == 0 { continue }
            if ready < 0 { if errno == EINTR { continue }; cut(link); return }
            var want = buf.count
            if let rate { want = max(1, min(want, rate / 20)) }
            if let limit { want = max(1, min(want, limit - used)) }
            let n = read(from, &buf, want)
            if n <= 0 { cut(link); return }
            var off = 0
            while off < n {
                // send with MSG_NOSIGNAL: a peer that is gone must not SIGPIPE the test process.
                let w = buf.withUnsafeBytes { send(to, $0.baseAddress! + off, n - off, Int32(MSG_NOSIGNAL)) }
                if w <= 0 { cut(link); return }
                off += w
            }
            lock.lock(); link.bytes += n; let total = link.bytes; lock.unlock()
            if let limit, total >= limit { cut(link); return }
            if rate != nil { usleep(50_000) }
        }
    }
}
