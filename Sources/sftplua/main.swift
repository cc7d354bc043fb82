import ArgumentParser
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

    func apply(to runner: Runner) {
        runner.setOutput(verbose: verbose && !quiet, quiet: quiet,
                         progress: noProgress ? .off : progress ? .on : .auto)
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
        Options of each: -v/--verbose, -q/--quiet, --progress/--no-progress.

        \(exitCodesHelp)
        """,
        version: "sftplua \(SFTPModule.version)",
        subcommands: [Exec.self, Run.self, Repl.self],
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

    @Flag(name: .long, help: "Print the plan of every mirror (and what other calls would do) and change nothing.")
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
        let status = runner.runFile(file, args: args)
        if status != .ok { throw ExitCode(status.rawValue) }
    }
}

// Usage errors exit with 2 (ArgumentParser's default is 64).
do {
    var command = try SFTPLuaCommand.parseAsRoot()
    try command.run()
} catch let e as ExitCode {
    exit(e.rawValue)
} catch {
    let code = SFTPLuaCommand.exitCode(for: error)
    if code == .success || code.rawValue == 0 {
        SFTPLuaCommand.exit(withError: error) // --help, --version
    }
    FileHandle.standardError.write(Data((SFTPLuaCommand.fullMessage(for: error) + "\n").utf8))
    exit(code == ExitCode.validationFailure ? 2 : code.rawValue)
}
