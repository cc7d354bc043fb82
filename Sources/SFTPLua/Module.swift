import ByteString
import Foundation
import LuaHost
import SFTPCore

/// Installs the `sftp` module into a Lua state: the global, `require("sftp")`, the error
/// metatable, the Connection type, and the Lua library from lua/.
///
/// What the library's modules share but users do not call lives in a second, private module,
/// `require("sftp.core")` (`core` below; Swift finds it under the registry key `coreKey`): the
/// option checker, the tree walk, globs, the Connection and RemoteFile method tables, and the
/// Lua functions the runner calls (`main`, `complete`). The public `sftp` table holds only
/// what docs/reference.md documents.
public enum SFTPModule {
    public static let version = "0.1.0"

    public static func install(into state: LuaState) throws {
        _ = Transfer.processUmask   // read once, here, before any transfer thread exists
        let l = state.lua
        l.setErrorPusher(ErrorObject.pusher)
        ErrorObject.register(l)
        ConnectionBinding.cls.register(in: l)
        ConnectionBinding.fileClass.register(in: l)
        ConnectionBinding.dirClass.register(in: l)

        l.newTable()
        let m = l.absIndex(-1)
        l.newTable()
        let core = l.absIndex(-1)
        l.set(m, "_VERSION", "sftplua \(version)")
        installFunctions(l, module: m, core: core)
        l.push(strings: ConnectOptions.luaKeys)
        l.setField(core, "connect_keys")
        LocalFS.install(l, module: m)
        MirrorBinding.install(l, module: m, core: core)
        WalkBinding.install(l, core: core)
        // The Lua side adds methods to Connection and RemoteFile through these tables.
        l.getRegistry(ConnectionBinding.cls.name + ".methods")
        l.setField(core, "connection_methods")
        l.getRegistry(ConnectionBinding.fileClass.name + ".methods")
        l.setField(core, "remotefile_methods")
        // The reference text (help() in the REPL).
        l.set(core, "reference", Prelude.reference)
        l.pushValue(core); l.setRegistry(coreKey)
        l.registerModule("sftp.core", table: core)
        l.pushValue(m); l.setGlobal("sftp")
        l.registerModule("sftp", table: m)
        l.top = 0
        try loadLibrary(state)
        state.lua.top = 0
    }

    /// lua/*.lua as modules: lua/NAME.lua is package.preload["sftp.NAME"] (embedded at build
    /// time, or with SFTPLUA_LUA_DIR read from that directory), and each is required once; a
    /// module requires what it uses, so no order between files matters.
    static func loadLibrary(_ state: LuaState) throws {
        let l2 = state.lua
        l2.getGlobal("package")
        l2.getField(-1, "preload")
        let preload = l2.absIndex(-1)
        var modules: [String] = []
        for (file, code) in try luaChunks() {
            let module = "sftp." + (file.hasSuffix(".lua") ? String(file.dropLast(4)) : file)
            try state.load(code, name: LuaLibrary.chunkName(file))
            l2.setField(preload, module)
            modules.append(module)
        }
        l2.pop(2)
        for module in modules {
            l2.getGlobal("require")
            l2.push(module)
            try state.call(nargs: 1)
            l2.top = 0
        }
    }

    /// The functions of the `sftp` table (at `m`) written in Swift.
    static func installFunctions(_ l: Lua, module m: Int32, core: Int32) {
        installCoreFunctions(l, module: m, core: core)
        installLibraryHelpers(l, core: core)
        installTimeFunctions(l, module: m)
        installRunnerFunctions(l, module: m, core: core)
    }

    /// Where Swift finds `require("sftp.core")` (the registry).
    static let coreKey = "sftp.core"

    /// Pushes the function `name` of the private module (nil when it has none).
    static func pushCoreFunction(_ l: Lua, _ name: String) {
        l.getRegistry(coreKey)
        l.getField(-1, name)
        l.remove(-2)
    }

    /// Connecting, errors and their kinds, option checks.
    static func installCoreFunctions(_ l: Lua, module m: Int32, core: Int32) {
        l.setFunction(m, "connect") { l in try connect(l) }
        l.setFunction(m, "error") { l in
            // sftp.error(kind, message [, path]): raise an error object from Lua.
            let kind = try l.checkString(1)
            let message = try l.optString(2) ?? kind
            ErrorObject.push(l, kind: kind, message: message, path: try l.optString(3))
            throw LuaError.value(ref: l.ref())
        }
        l.setFunction(core, "closest") { l in
            // core.closest(word, names): the name closest to word, or nil (for "did you mean").
            let word = try l.checkString(1)
            guard l.isTable(2) else { throw l.typeError(2, expected: "table") }
            var names: [String] = []
            for i in 0..<l.rawLength(2) { l.getIndex(2, i + 1); if let s = l.string(-1) { names.append(s) }; l.pop() }
            l.push(closest(to: word, in: names))
            return 1
        }
        l.setFunction(core, "check_opts") { l in
            // core.check_opts(opts, fname, n, allowed) -> opts (or {} for nil): the one option
            // checker (LuaOptions), for the Lua side too. `allowed` maps each key to true (any
            // value) or to the type its value must have ("boolean", "function", "string", ...).
            // n is the argument's stack position (a method's self counted: util.check_opts).
            let fname = try l.checkString(2)
            let n = try l.checkInteger(3)
            guard l.isTable(4) else { throw l.typeError(4, expected: "table") }
            var allowed: [String] = [], types: [(String, String)] = []
            l.forEach(4) {
                guard l.isString(-2), let k = l.string(-2) else { return }
                allowed.append(k)
                if l.isString(-1), let t = l.string(-1) { types.append((k, t)) }
            }
            if l.isNoneOrNil(1) { l.newTable(); return 1 }
            guard l.isTable(1) else {
                // n is the stack position (self counted); shown as luaL_argerror would.
                var e = LuaArgumentError(position: Int32(n), "table expected, got \(l.typeName(1))")
                e.function = fname
                throw e
            }
            let o = try LuaOptions(l, 1, allowed: allowed, function: fname, arrayPart: false)
            for (k, t) in types.sorted(by: { $0.0 < $1.0 }) { try o.check(k, is: t) }
            l.pushValue(1)
            return 1
        }
        l.newTable()
        for k in SSHError.Kind.allCases { l.set(-1, k.rawValue, k.rawValue) }
        l.setField(m, "kinds")
    }

    /// What the Lua library shares with the Swift side (`require("sftp.core")`): argument and
    /// self errors written as the Swift functions' are, the one path join, the one key check.
    static func installLibraryHelpers(_ l: Lua, core: Int32) {
        l.setFunction(core, "argerror") { l in
            // core.argerror(n, fname, msg): "bad argument" for a Connection method written in
            // Lua; n counts self, and is shown as for a Swift method (self not counted when the
            // call was made with ':', the name as the call was written; fname when Lua cannot tell).
            var e = LuaArgumentError(position: Int32(try l.checkInteger(1)), try l.checkString(3))
            e.function = try l.checkString(2)
            throw e
        }
        l.setFunction(core, "check_self") { l in
            // core.check_self(c, fname): the self check of a Connection method written in Lua.
            let fname = try l.checkString(2)
            if (try? ConnectionBinding.cls.check(l, 1, method: fname)) != nil { return 0 }
            var e = LuaArgumentError(position: 1, "\(ConnectionBinding.cls.name) expected, got \(l.typeName(1))")
            e.function = fname
            e.isSelfCheck = true
            throw e
        }
        l.setFunction(core, "join") { l in
            // core.join(a, b): Paths.join.
            l.push(Paths.join(try l.checkString(1), try l.checkString(2)))   // (String holds any bytes: ByteString)
            return 1
        }
        l.setFunction(core, "shown") { l in
            // core.shown(name): a name as plans and -v lines print it (Paths.shown).
            l.push(Paths.shown(try l.checkString(1)))
            return 1
        }
        l.setFunction(core, "one_line") { l in
            // core.one_line(text): a log line with any control byte escaped (Paths.oneLine).
            l.push(Paths.oneLine(try l.checkString(1)))
            return 1
        }
        l.setFunction(core, "unknown_key") { l in
            // core.unknown_key(t, allowed, where) -> message | nil: the option checker's rule for
            // a recipe's tables; `allowed` is a set {key = true}.
            guard l.isTable(1), l.isTable(2) else { throw l.typeError(l.isTable(1) ? 2 : 1, expected: "table") }
            let place = try l.checkString(3)
            var allowed: [String] = []
            l.forEach(2) { if l.isString(-2), let k = l.string(-2) { allowed.append(k) } }
            guard let bad = LuaOptions.unknownKey(l, 1, allowed: allowed, arrayPart: false) else { l.pushNil(); return 1 }
            let near = bad.name.flatMap { closest(to: $0, in: allowed) }
            l.push("unknown key '\(bad.shown)' in \(place)\(near.map { " (did you mean '\($0)'?)" } ?? ""); valid keys: \(allowed.sorted().joined(separator: ", "))")
            return 1
        }
    }

    /// `sftp.sleep` (Ctrl-C ends it).
    static func installTimeFunctions(_ l: Lua, module m: Int32) {
        l.setFunction(m, "sleep") { l in
            // sftp.sleep(seconds): waits; Ctrl-C ends it with an Interrupted error.
            guard let t = try l.optNumber(1), t >= 0, t.isFinite else { throw l.typeError(1, expected: "non-negative number") }
            try sleep(t)
            return 0
        }
    }

    /// Sleeps `seconds`; Ctrl-C ends it at once. SIGINT lands on this thread (the one that runs
    /// Lua: workers block it, `startWorker`) and its handler has no SA_RESTART, so the signal
    /// cuts the wait short (EINTR) and the checkpoint throws `Interrupted`. A plain nanosleep
    /// would miss a Ctrl-C that came between the check and the sleep, so SIGINT is blocked for
    /// the check and pselect unblocks it only while it waits (atomically). Any other signal's
    /// EINTR waits on for what is left (bounded: a run of signals cannot make it spin forever).
    static func sleep(_ seconds: Double) throws {
        var sigint = sigset_t(), unblocked = sigset_t()
        sigemptyset(&sigint)
        sigaddset(&sigint, SIGINT)
        pthread_sigmask(SIG_BLOCK, &sigint, &unblocked)
        defer { pthread_sigmask(SIG_SETMASK, &unblocked, nil) }
        sigdelset(&unblocked, SIGINT)   // what pselect waits with, whatever the caller had
        let end = DispatchTime.now().uptimeNanoseconds &+ UInt64(min(seconds, 1e9) * 1e9)
        var rounds = 0
        while rounds < 1_000_000 {
            rounds += 1
            try Interrupt.checkpoint()
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= end { break }
            let left = end - now
            var ts = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
            _ = pselect(0, nil, nil, nil, &ts, &unblocked)
        }
    }

    /// The runner's and the tests' helpers (terminal, rate, live handles, the progress block), and `sftp.now`.
    static func installRunnerFunctions(_ l: Lua, module m: Int32, core: Int32) {
        l.setFunction(core, "isatty") { l in
            // core.isatty(fd): is that descriptor a terminal (summaries show there)?
            l.push(isatty(Int32(try l.checkInteger(1))) != 0)
            return 1
        }
        l.setFunction(core, "bwlimit") { l in
            // core.bwlimit(value | nil) -> bytes per second: sets (or clears) the rate cap of
            // the transfers that follow; value is a number of bytes/s or "10M", "512K", "1G".
            if l.isNoneOrNil(1) { RateLimiter.active = nil; l.pushNil(); return 1 }
            let rate: Double?
            if let s = l.string(1) { rate = RateLimiter.parse(s) } else { rate = l.number(1).flatMap { $0 > 0 && $0.isFinite ? $0 : nil } }
            guard let rate else {
                throw LuaArgumentError("bad option 'bwlimit' (bytes per second as a positive number, or a string like \"10M\", \"512K\" expected, got \(l.describe(1)))", argument: "bwlimit")
            }
            RateLimiter.active = RateLimiter(bytesPerSecond: rate)
            l.push(rate)
            return 1
        }
        l.setFunction(m, "_live") { l in
            // sftp._live(): {sessions=, channels=, files=} libssh2 objects alive now (leak checks).
            l.newTable()
            l.set(-1, "sessions", Int64(LiveHandles.sessions.value))
            l.set(-1, "channels", Int64(LiveHandles.channels.value))
            l.set(-1, "files", Int64(LiveHandles.files.value))
            return 1
        }
        l.setFunction(core, "progress_hide") { _ in
            // Before script output: the progress block (if on screen) steps aside.
            ProgressBar.current?.hide()
            return 0
        }
        l.setFunction(core, "progress_show") { l in
            // After script output; true when that output did not end its line.
            fflush(nil)   // every C stream: what print wrote
            ProgressBar.current?.show(afterPartialLine: l.boolean(1))
            return 0
        }
        l.setFunction(m, "now") { l in
            // sftp.now(): seconds since the epoch, with fractions (os.time has whole seconds).
            l.push(Date().timeIntervalSince1970)
            return 1
        }
    }

    /// lua/*.lua by file name: from `SFTPLUA_LUA_DIR` when set, else the embedded copy. The
    /// directory must hold every module the build embeds (a wrong path is an error, not a run
    /// without the library); its files are read as bytes, as Lua reads a chunk.
    static func luaChunks() throws -> [(String, String)] {
        guard let dir = ProcessInfo.processInfo.environment["SFTPLUA_LUA_DIR"], !dir.isEmpty else { return Prelude.chunks }
        let found: [String]
        do {
            found = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".lua") }.sorted()
        } catch {
            throw LocalError(.fileNotFound, "SFTPLUA_LUA_DIR: cannot list \(dir): not a readable directory", path: dir)
        }
        let missing = Prelude.chunks.map(\.0).filter { !found.contains($0) }
        if !missing.isEmpty {
            throw LocalError(.fileNotFound, "SFTPLUA_LUA_DIR: \(dir) lacks \(missing.joined(separator: ", ")) (it stands for the whole lua/ directory)", path: dir)
        }
        return try found.map { name in
            guard let data = FileManager.default.contents(atPath: dir + "/" + name) else {
                throw LocalError(.os, "SFTPLUA_LUA_DIR: cannot read \(dir)/\(name)", path: dir + "/" + name)
            }
            return (name, ByteString.string(data))
        }
    }

    /// Ctrl-C for the CLI: SIGINT interrupts the running Lua code or transfer with an
    /// `Interrupted` error instead of killing the process.
    public static func enableInterrupts(_ state: LuaState) {
        LuaInterrupt.install(state.lua, errorMetatable: ErrorObject.metatable)
        Interrupt.owner = pthread_self()
        RateLimiter.waiting = { ProgressBar.current?.tick() }
        Interrupt.flag = { LuaInterrupt.pending() }
        Interrupt.clear = { LuaInterrupt.clear() }
        Interrupt.taken = { LuaInterrupt.taken() }
    }

    /// sftp.connect{...} or sftp.connect(host, {...}).
    static func connect(_ l: Lua) throws -> Int32 {
        var optsIndex: Int32 = 1
        var host: String?
        if l.isString(1) {
            host = l.string(1)
            optsIndex = 2
        } else if !l.isTable(1) {
            throw l.typeError(1, expected: "table")
        }
        let o = try LuaOptions(l, optsIndex, allowed: ConnectOptions.luaKeys, function: "connect")
        if let host, !o.isEmpty, o.has("host") {
            throw LuaArgumentError("bad argument #2 to 'connect' (host given twice: '\(host)' and in the options)", argument: "host")
        }
        var (opts, log): (ConnectOptions, ConnectionLog?)
        if let host {
            l.newTable()
            let t = l.absIndex(-1)
            if let idx = o.index { l.forEach(idx) { l.pushValue(-2); l.pushValue(-2); l.forEachSet(t) } }
            l.set(t, "host", host)
            (opts, log) = try ConnectOptions.from(try LuaOptions(l, t, allowed: ConnectOptions.luaKeys, function: "connect"))
        } else {
            (opts, log) = try ConnectOptions.from(o)
        }
        let alias = opts.host
        let applied = opts.applySSHConfig(portGiven: o.has("port"))
        if !applied.isEmpty {
            let line = "\(alias): from ~/.ssh/config: \(applied.joined(separator: ", "))"
            log?.write(line)
            Diagnostics.note(line)
        }
        let conn = try Connection(options: opts, log: log)
        ConnectionBinding.cls.push(conn, in: l)
        return 1
    }
}

extension Lua {
    /// Pops key and value (pushed in that order) into the table at t.
    func forEachSet(_ t: Int32) { rawSet(t) }
}
