import ArgumentParser
import ByteString
import Foundation
import SFTPLua

let exitCodesHelp = """
EXIT CODES:
  0  success
  1  the script failed (uncaught error, syntax error)
  2  usage error (bad option, missing or unreadable script file)
  3  connection failed or timed out (ConnectionError, Timeout)
  4  authentication failed (AuthenticationError, CredentialError)
  5  host key refused (HostKeyError)
  130  interrupted (Ctrl-C, uncaught Interrupted)
"""

/// Output options shared by every command.
struct GlobalOptions: ParsableArguments {
    @Flag(name: [.customShort("v"), .long], help: "Log what sftplua does (connect, auth method, each transfer and action) to stderr.")
    var verbose = false

    @Flag(name: [.customShort("q"), .long], help: "Print only errors (no summaries, no progress).")
    var quiet = false

    @Flag(help: "Show progress bars for transfers longer than a second, even when stderr is not a terminal.")
    var progress = false

    @Flag(name: .customLong("no-progress"), help: "Never show progress bars (default: shown on a terminal).")
    var noProgress = false

    @Flag(help: "Print plans (dry run), actions and summaries as JSON lines on stdout, one object per line.")
    var json = false

    @Option(name: .customLong("bwlimit"), help: ArgumentHelp("Cap the rate of every transfer: bytes per second, or 10M, 512K, 1G (a call's own bwlimit option wins).", valueName: "rate"))
    var bwlimit: String?

    @Option(name: .customLong("stats"), help: ArgumentHelp("Print a status line every PERIOD (10s, 1m, 500ms) while transferring, when no progress block is shown (stderr is not a terminal).", valueName: "period"))
    var stats: String?

    mutating func validate() throws {
        if let b = bwlimit, Runner.rate(b) == nil {
            throw ValidationError("--bwlimit: '\(b)' is not a rate (bytes per second, or 10M, 512K, 1G)")
        }
        if let p = stats, Runner.period(p) == nil {
            throw ValidationError("--stats: '\(p)' is not a period (10s, 1m, 500ms, or seconds)")
        }
    }

    func apply(to runner: Runner) {
        runner.setLimits(bwlimit: bwlimit, statsEvery: stats.flatMap(Runner.period))
        runner.setOutput(verbose: verbose && !quiet, quiet: quiet,
                         progress: json ? .off : noProgress ? .off : progress ? .on : .auto)
        runner.setJSON(json)
    }
}

struct SFTPLuaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sftplua",
        abstract: "Scriptable SFTP: file-sync recipes in Lua over libssh2.",
        discussion: """
        sftplua run FILE [ARGS...]   run a recipe (arguments in the global `arg` and in `...`)
        sftplua -e CODE              run a chunk of Lua
        sftplua repl                 interactive Lua with the `sftp` module
        sftplua ls|get|put|rm|mkdir|copy|mirror ...   quick commands ([user@]host:path places)
        Options of each: -v/--verbose, -q/--quiet, --progress/--no-progress.

        \(exitCodesHelp)
        """,
        version: "sftplua \(SFTPModule.version)",
        subcommands: [Exec.self, Run.self, Repl.self, LsCommand.self, GetCommand.self, PutCommand.self, RmCommand.self,
                      MkdirCommand.self, CopyCommand.self, MirrorCommand.self],
        defaultSubcommand: Exec.self
    )

}

/// `sftplua -e CODE`, and bare `sftplua` (the REPL on a terminal, else standard input as a
/// script): the default subcommand, so that it shares the output options with `run` and `repl`.
struct Exec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run chunks given with -e (the default command).",
        shouldDisplay: false
    )

    @Option(name: .customShort("e"), help: ArgumentHelp("Run a chunk of Lua code (repeatable; run in order).", valueName: "code"))
    var execute: [String] = []

    @OptionGroup var global: GlobalOptions

    func run() throws {
        if execute.isEmpty {
            if isatty(0) != 0 {
                throw ExitCode(Repl.loop(connect: nil, global: global))
            }
            // Not a terminal: run standard input as a script, as `lua -` does.
            let data = FileHandle.standardInput.readDataToEndOfFile()
            let runner = try Runner()
            runner.enableInterrupts()
            global.apply(to: runner)
            runner.setArgs(script: "-", args: [])
            throw ExitCode(runner.runString(String(decoding: data, as: UTF8.self), name: "=stdin").rawValue)
        }
        let runner = try Runner()
        runner.enableInterrupts()
        global.apply(to: runner)
        runner.setArgs(script: "-e", args: [])
        for code in execute {
            let status = runner.runString(code)
            if status != .ok { throw ExitCode(status.rawValue) }
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a Lua recipe file.",
        discussion: "The script's arguments are in the global `arg` (arg[0] is the script) and in `...`.\n\n" + exitCodesHelp
    )

    @Flag(name: [.customShort("n"), .long], help: "Print the plan of every mirror and tree copy (and what other calls would do) and change nothing.")
    var dryRun = false

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The Lua script to run.")
    var file: String

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the script.")
    var args: [String] = []

    func run() throws {
        let runner = try Runner()
        runner.enableInterrupts()
        global.apply(to: runner)
        if dryRun { runner.setDryRun(true) }
        let status = runner.runFile(file, args: args.first == "--" ? Array(args.dropFirst()) : args)
        if status != .ok { throw ExitCode(status.rawValue) }
    }
}

/// sftplua's own flags work wherever a user puts them: before the command (`sftplua -v run F`),
/// after the script (`sftplua run F --dry-run`), and `sftplua F.lua ARGS` runs a script as `lua`
/// does. Arguments for the script are every other word after the file, and everything after `--`.
func normalizedArguments(_ argv: [String]) -> [String] {
    var a = Array(argv.dropFirst())
    let commands: Set = ["run", "repl", "exec", "help", "ls", "get", "put", "rm", "mkdir", "copy", "mirror"]
    let global: Set = ["-v", "--verbose", "-q", "--quiet", "--progress", "--no-progress", "--json"]
    let runOnly: Set = ["-n", "--dry-run"]
    // Global options that take a value: `--bwlimit 10M` or `--bwlimit=10M`.
    let valued: Set = ["--bwlimit", "--stats"]
    func isValued(_ x: String) -> Bool { valued.contains { x.hasPrefix($0 + "=") } }
    var leading: [String] = []
    while let f = a.first, global.contains(f) || runOnly.contains(f) || valued.contains(f) || isValued(f) {
        leading.append(f); a.removeFirst()
        if valued.contains(f), let v = a.first { leading.append(v); a.removeFirst() }
    }
    if let first = a.first, !first.hasPrefix("-"), !commands.contains(first) { a.insert("run", at: 0) }
    guard let command = a.first, commands.contains(command) else { return leading + a }
    guard command == "run" else {
        // A quick command's own flags may come anywhere; sftplua's are taken out of its words.
        if command != "help" && command != "repl" && command != "exec" {
            var mine: [String] = [], others: [String] = []
            var rest = Array(a.dropFirst())[...]
            while let x = rest.popFirst() {
                if global.contains(x) || isValued(x) || (command == "mirror" && runOnly.contains(x)) {
                    mine.append(x)
                } else if valued.contains(x) {
                    mine.append(x)
                    if let v = rest.popFirst() { mine.append(v) }
                } else {
                    others.append(x)
                }
            }
            return [command] + leading + mine + others
        }
        return [command] + leading + a.dropFirst()
    }
    var flags = leading, file: String?, args: [String] = [], passthrough = false, expectValue = false
    for x in a.dropFirst() {
        if expectValue {
            flags.append(x)
            expectValue = false
        } else if passthrough {
            if file == nil { file = x } else { args.append(x) }
        } else if x == "--" {
            passthrough = true
        } else if global.contains(x) || runOnly.contains(x) || isValued(x) {
            flags.append(x)
        } else if valued.contains(x) {
            flags.append(x)
            expectValue = true
        } else if file == nil {
            if x.hasPrefix("-") && x != "-" { flags.append(x) } else { file = x }   // an unknown option is reported
        } else {
            args.append(x)
        }
    }
    return ["run"] + flags + (file.map { [$0] } ?? []) + (args.isEmpty ? [] : ["--"] + args)
}

/// A value-taking flag with nothing after it (`sftplua f.lua --stats`): its name, to say so
/// before the script's name could be taken for the value.
func danglingValueFlag(_ argv: [String]) -> String? {
    let words = Array(argv.dropFirst().prefix { $0 != "--" })
    guard let last = words.last, ["--bwlimit", "--stats"].contains(last) else { return nil }
    return last
}

/// The command line as bytes: `CommandLine.arguments` turns each byte that is not UTF-8 into
/// U+FFFD, so a file name like `$'\xff.bin'` (or a script's argument, a glob, `-e` code) would
/// name another file. ByteString keeps every byte.
let rawArguments: [String] = (0..<Int(CommandLine.argc)).map { i in
    guard let p = CommandLine.unsafeArgv[i] else { return "" }
    return ByteString.string(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
}

// Usage errors exit with 2 (ArgumentParser's default is 64).
if let flag = danglingValueFlag(rawArguments) {
    FileHandle.standardError.write(Data("Error: \(flag) needs a value (\(flag == "--stats" ? "a period: 10s, 1m, 500ms" : "a rate: 10M, 512K, 1G")).\nSee 'sftplua --help'.\n".utf8))
    exit(2)
}
do {
    var command = try SFTPLuaCommand.parseAsRoot(normalizedArguments(rawArguments))
    try command.run()
} catch let e as ExitCode {
    exit(e.rawValue)
} catch {
    let code = SFTPLuaCommand.exitCode(for: error)
    if code == .success || code.rawValue == 0 {
        SFTPLuaCommand.exit(withError: error) // --help, --version
    }
    // The default command is internal: usage lines name `sftplua`, not `sftplua exec`.
    let message = SFTPLuaCommand.fullMessage(for: error).replacingOccurrences(of: "sftplua exec", with: "sftplua")
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code == ExitCode.validationFailure ? 2 : code.rawValue)
}
