import Foundation
import LuaHost
import SFTPCore

extension ConnectOptions {
    static let luaKeys = ["host", "port", "username", "private_key", "private_key_pass", "password",
                          "known_hosts", "host_key", "timeout", "ciphers", "compression", "log"]

    /// Reads the `sftp.connect` options. `extra` keys are accepted (and left to the caller).
    static func from(_ o: LuaOptions) throws -> (ConnectOptions, ConnectionLog?) {
        guard let host = try o.string("host"), !host.isEmpty else {
            throw LuaArgumentError("bad option 'host' to '\(o.function)' (a host name is required)", argument: "host")
        }
        var c = ConnectOptions(host: host)
        if let p = try o.integer("port") {
            guard (1...65535).contains(p) else { throw LuaArgumentError("bad option 'port' to '\(o.function)' (1-65535 expected, got \(p))", argument: "port") }
            c.port = Int(p)
        }
        c.username = try o.string("username")
        c.privateKey = try o.string("private_key")
        c.privateKeyPass = try o.string("private_key_pass")
        c.password = try o.string("password")
        c.knownHosts = try o.string("known_hosts")
        if let hk = try o.string("host_key") {
            guard let p = HostKeyPolicy(rawValue: hk) else {
                var m = "bad option 'host_key' to '\(o.function)' ('accept-new', 'strict' or 'off' expected, got '\(hk)')"
                if let near = closest(to: hk, in: HostKeyPolicy.allCases.map(\.rawValue)) { m += " (did you mean '\(near)'?)" }
                throw LuaArgumentError(m, argument: "host_key")
            }
            c.hostKeyPolicy = p
        }
        if let t = try o.number("timeout") {
            guard t > 0, t.isFinite else { throw LuaArgumentError("bad option 'timeout' to '\(o.function)' (positive number of seconds expected)", argument: "timeout") }
            c.timeout = t
        }
        c.ciphers = try o.strings("ciphers")
        c.compression = try o.bool("compression") ?? false
        var log: ConnectionLog?
        switch try o.stringOrBool("log") {
        case .bool(true)?: log = try ConnectionLog.temporary()
        case .string(let p)?: log = try ConnectionLog(path: c.expand(p))
        default: break
        }
        return (c, log)
    }
}
