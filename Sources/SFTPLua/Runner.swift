import ByteString
import Foundation
import LuaHost
import SFTPCore

/// Runs scripts and chunks the way the `lua` command does, and maps failures to exit codes.
public final class Runner {
    /// Exit codes of `sftplua` (documented in --help and the README).
    public enum Exit: Int32 {
        case ok = 0
        case scriptError = 1
        case usage = 2
        case connection = 3       // ConnectionError, Timeout
        case authentication = 4   // AuthenticationError, CredentialError
        case hostKey = 5          // HostKeyError
        case interrupted = 130    // Ctrl-C (Interrupted), as shells report SIGINT
    }

    public let state: LuaState
    var scriptPath: String?
    let stderr: (String) -> Void

    /// `stderr` gets messages as ByteString text (a name in them keeps its bytes).
    public init(stderr: @escaping (String) -> Void = { FileHandle.standardError.write(Data(ByteString.bytes($0))) }) throws {
        state = LuaState()
        self.stderr = stderr
        try SFTPModule.install(into: state)
    }

    /// Ctrl-C raises `Interrupted` in the script instead of killing the process (CLI only).
    public func enableInterrupts() { SFTPModule.enableInterrupts(state) }

    /// `-v`, `--quiet`, `--progress`: for the Swift side and as `sftp.verbose`/`sftp.quiet`.
    public func setOutput(verbose: Bool, quiet: Bool, progress: Diagnostics.ProgressMode) {
        Diagnostics.verbose = verbose
        Diagnostics.quiet = quiet
        Diagnostics.progress = progress
        let l = state.lua
        l.getGlobal("sftp")
        l.set(-1, "verbose", verbose)
        l.set(-1, "quiet", quiet)
        l.pop()
    }

    /// `--bwlimit RATE`: the default `bwlimit` of every transfer call (`sftp.default_bwlimit`);
    /// `--stats SECONDS`: a status line that often when no progress block is drawn.
    public func setLimits(bwlimit: String?, statsEvery: Double?) {
        Diagnostics.statsEvery = statsEvery
        let l = state.lua
        l.getGlobal("sftp")
        if let bwlimit { l.set(-1, "default_bwlimit", bwlimit) }
        l.pop()
    }

    /// A `--bwlimit` rate in bytes per second ("10M", "512K", "1G", a number); nil if not one.
    public static func rate(_ s: String) -> Double? { RateLimiter.parse(s) }

    /// A `--stats` period: "10s", "1m", "500ms", "1h" or a number of seconds; nil if not one.
    public static func period(_ s: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (u, f) in units where s.hasSuffix(u) {
            if let v = Double(s.dropLast(u.count)), v > 0, v.isFinite { return v * f }
        }
        if let v = Double(s), v > 0, v.isFinite { return v }
        return nil
    }

    /// `--json`: plans, actions and summaries as JSON lines on stdout (`sftp.json`).
    public func setJSON(_ on: Bool) {
        let l = state.lua
        l.getGlobal("sftp")
        l.set(-1, "json", on)
        l.pop()
    }

    /// Tab completion for the REPL: what `core.complete(word, line)` (lua/interactive.lua) offers.
    public func completions(for word: String, line: String) -> [String] {
        let l = state.lua
        let top = l.top
        defer { l.top = top }
        SFTPModule.pushCoreFunction(l, "complete")
        guard l.isFunction(-1) else { return [] }
        l.push(word)
        l.push(line)
        guard (try? l.pcall(nargs: 2, nresults: 1)) != nil, l.isTable(-1) else { return [] }
        var out: [String] = []
        for i in 0..<min(l.rawLength(-1), 500) {
            l.getIndex(-1, i + 1)
            if let s = l.string(-1) { out.append(s) }
            l.pop()
        }
        return out
    }

    /// True (and cleared) when Ctrl-C was pressed since the last check.
    public func takeInterrupt() -> Bool { Interrupt.consume() }

    /// Is a Ctrl-C waiting (not taken)?
    public var interruptPending: Bool { Interrupt.pending() }

    /// Sets the global `arg`: arg[0] the script, arg[1...] its arguments, arg[-1] the program.
    public func setArgs(script: String, args: [String]) {
        let l = state.lua
        l.newTable(narr: Int32(args.count), nrec: 2)
        l.push("sftplua"); l.setIndex(-2, -1)
        l.push(script); l.setIndex(-2, 0)
        for (i, a) in args.enumerated() { l.push(a); l.setIndex(-2, i + 1) }
        l.setGlobal("arg")
    }

    /// Runs the script file with `args` (also passed as `...`).
    public func runFile(_ path: String, args: [String]) -> Exit {
        // The path's own bytes (ByteString), not FileManager's UTF-8 of it.
        var st = stat()
        guard ByteString.withCString(path, { stat($0, &st) }) == 0 else {
            stderr("sftplua: cannot open \(path): no such file\n")
            return .usage
        }
        let isDir = st.st_mode & S_IFMT == S_IFDIR
        if isDir || ByteString.withCString(path, { access($0, R_OK) }) != 0 {
            stderr("sftplua: cannot read \(path): \(isDir ? "is a directory" : String(cString: strerror(errno)))\n")
            return .usage
        }
        setArgs(script: path, args: args)
        scriptPath = path
        // core.main(chunk, ...) (lua/recipe.lua) runs the chunk and applies a recipe table it returns.
        let l = state.lua
        SFTPModule.pushCoreFunction(l, "main")
        do { try state.loadFile(path) } catch { l.top = 0; return report(error) }
        for a in args { l.push(a) }
        return execute(nargs: Int32(args.count) + 1)
    }

    /// `--dry-run`: mirrors print their plan and nothing is changed through sftplua.
    public func setDryRun(_ on: Bool) {
        let l = state.lua
        l.getGlobal("sftp")
        l.set(-1, "dry_run", on)
        l.pop()
    }

    /// Runs a chunk given on the command line.
    public func runString(_ code: String, name: String = "=(command line)") -> Exit {
        do { try state.load(code, name: name) } catch { return report(error) }
        return execute(nargs: 0)
    }

    func execute(nargs: Int32) -> Exit {
        do {
            try state.call(nargs: nargs)
            state.lua.top = 0
            return .ok
        } catch {
            return report(error)
        }
    }

    /// The traceback a user reads: sftplua's own frames (`[sftplua recipe.lua]:69`, `[C]`
    /// calls into it) left out unless -v, so what remains points at the user's code.
    static func userTraceback(_ t: String) -> String {
        if Diagnostics.verbose { return t }
        let lines = t.split(separator: "\n", omittingEmptySubsequences: false)
        let kept = lines.filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix(LuaLibrary.chunkPrefix) }
        return kept.count == lines.count ? t : kept.joined(separator: "\n") + "\n\t(sftplua's own frames hidden; -v shows them)"
    }

    /// Prints a failure as `FILE:LINE: message` plus a traceback; returns the exit code for it.
    /// A quick command (`sftplua mirror ...`): its program is sftplua's own, so an error shows
    /// as one line without a traceback, and a wrong word (an ArgumentError) is a usage error.
    public var quickCommand: String?

    public func report(_ error: Error) -> Exit {
        switch error {
        case LuaState.Failure.load(let message):
            stderr("\(message)\n")
            return .scriptError
        case let LuaState.Failure.runtime(ref, message, whereAt, traceback):
            let l = state.lua
            l.pushRef(ref)
            l.unref(ref)
            let kindName = ErrorObject.kind(l, -1)
            let kind = kindName.flatMap(ErrorKind.init(rawValue:))
            l.pop()
            // An error inside sftplua's own Lua (applying a returned recipe) is the script's.
            var whereAt = whereAt
            if whereAt.hasPrefix(LuaLibrary.chunkPrefix), let script = scriptPath { whereAt = script }
            // String errors raised by Lua already carry their position: the line that raised it,
            // also inside a callback (filter, progress, on_action) that sftplua called from the
            // line of the call, which is not repeated in front.
            if let quick = quickCommand {
                stderr("sftplua \(quick): \(message)\n")
                return kind == .argument ? .usage : Self.exit(forKind: kind)
            }
            let text = kindName == nil && Self.hasPosition(message) ? message : "\(whereAt): \(message)"
            stderr("\(text)\n\(Self.userTraceback(traceback))\n")
            return Self.exit(forKind: kind)
        default:
            stderr("sftplua: \(error)\n")
            return .scriptError
        }
    }

    /// Does a message start with a Lua position ("file.lua:12: ", "[string \"x\"]:3: ")?
    static func hasPosition(_ message: String) -> Bool {
        message.range(of: #"^[^\n]*?:[0-9]+: "#, options: .regularExpression) != nil
    }

    /// The exit code for an uncaught error of `kind` (nil: not an error object, or a kind
    /// sftplua does not know).
    public static func exit(forKind kind: ErrorKind?) -> Exit {
        switch kind {
        case .connection, .timeout: return .connection
        case .authentication, .credential: return .authentication
        case .hostKey: return .hostKey
        case .interrupted: return .interrupted
        default: return .scriptError
        }
    }
}
