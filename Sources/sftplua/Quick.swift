import ArgumentParser
import SFTPLua

/// Quick commands without writing Lua, scp- and rclone-shaped: `ls`, `get`, `put`, `rm`, `mkdir`,
/// `copy`, `mirror`. Each runs lua/quick.lua on the same engine as recipes, with the command's
/// words as data in `arg` (never spliced into code).
enum Quick {
    static func run(_ op: String, _ words: [String], _ global: GlobalOptions, dryRun: Bool = false) throws {
        let runner = try Runner()
        runner.quickCommand = op
        runner.enableInterrupts()
        global.apply(to: runner)
        if dryRun { runner.setDryRun(true) }
        runner.setArgs(script: "sftplua " + op, args: [op] + words)
        let status = runner.runString(quickProgram, name: "=sftplua " + op)
        if status != .ok { throw ExitCode(status.rawValue) }
    }

    static let examples = """
    EXAMPLES:
      sftplua ls backup:/var/www                 list like ls -l (backup: an ssh_config alias)
      sftplua get etl@files.example.com:in/a.csv .
      sftplua get files:reports ./reports        a directory is copied whole (as scp -r)
      sftplua put a.csv b.csv files:incoming/    several files into a directory
      sftplua rm files:incoming/old.csv
      sftplua mkdir files:incoming/2026
      sftplua copy ./site files:/var/www/site    either side remote
      sftplua mirror ./site files:/var/www --delete --exclude '*.tmp' --dry-run
    """

    /// Every quick command runs lua/quick.lua: arg[1] is the command, then its words (data).
    static let quickProgram = #"require("sftp.quick").run(arg[1], table.move(arg, 2, #arg, 1, {}))"#
}

/// One subcommand per quick command; their words go to the program as they are.
protocol QuickCommand: ParsableCommand {
    static var op: String { get }
    var global: GlobalOptions { get }
    var words: [String] { get }
    var dryRunFlag: Bool { get }
}
extension QuickCommand {
    func run() throws { try Quick.run(Self.op, words, global, dryRun: dryRunFlag) }
    var dryRunFlag: Bool { false }
}

struct LsCommand: QuickCommand {
    static let op = "ls"
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List remote directories like ls -l.", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "[user@]host:path ...") var words: [String] = []
}
struct GetCommand: QuickCommand {
    static let op = "get"
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Download a file or a directory (whole, as scp -r).", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "[user@]host:path [LOCAL]") var words: [String] = []
}
struct PutCommand: QuickCommand {
    static let op = "put"
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Upload files or directories.", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "LOCAL... [user@]host:path") var words: [String] = []
}
struct RmCommand: QuickCommand {
    static let op = "rm"
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove remote files.", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "[user@]host:path ...") var words: [String] = []
}
struct MkdirCommand: QuickCommand {
    static let op = "mkdir"
    static let configuration = CommandConfiguration(commandName: "mkdir", abstract: "Make remote directories (and their parents).", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "[user@]host:path ...") var words: [String] = []
}
struct CopyCommand: QuickCommand {
    static let op = "copy"
    static let configuration = CommandConfiguration(commandName: "copy", abstract: "Copy SRC to DST, one of them [user@]host:path (directories whole).", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(parsing: .allUnrecognized, help: "SRC DST [--parallel N]") var words: [String] = []
}
struct MirrorCommand: QuickCommand {
    static let op = "mirror"
    static let configuration = CommandConfiguration(commandName: "mirror", abstract: "Make DST a mirror of SRC (one of them [user@]host:path).",
        discussion: "Options: --delete, --exclude GLOB (repeatable), --include GLOB (repeatable), --checksum, --parallel N, -n/--dry-run.\n\n" + Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("n"), .long], help: "Print the plan and change nothing.") var dryRun = false
    @Argument(parsing: .allUnrecognized, help: "SRC DST [options]") var words: [String] = []
    var dryRunFlag: Bool { dryRun }
}
