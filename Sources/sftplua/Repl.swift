import ArgumentParser
import Foundation
import SFTPLua

struct Repl: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Interactive Lua with the sftp module.",
        discussion: "Expressions print their values; an unfinished statement continues on the next line. Ctrl-D exits."
    )

    @Option(help: "Connect to HOST first and bind the connection to the global `c`.")
    var connect: String?

    func run() throws {
        let status = Repl.loop(connect: connect)
        if status != 0 { throw ExitCode(status) }
    }

    static func loop(connect: String?) -> Int32 {
        let runner: Runner
        do { runner = try Runner() } catch { FileHandle.standardError.write(Data("sftplua: \(error)\n".utf8)); return 1 }
        runner.setArgs(script: "repl", args: [])
        runner.enableInterrupts()
        if let host = connect {
            let quoted = host.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            let st = runner.runString("c = sftp.connect{host = \"\(quoted)\"}", name: "=connect")
            if st != .ok { return st.rawValue }
        }
        let tty = isatty(0) != 0
        if tty { print("sftplua \(SFTPModule.version) (Lua 5.4); Ctrl-D to exit") }
        var buffer = ""
        var lines = 0
        while lines < Int.max - 1 {
            lines += 1
            if tty {
                print(buffer.isEmpty ? "> " : ">> ", terminator: "")
                fflush(stdout)
            }
            guard let line = readLine(strippingNewline: true) else {
                // Ctrl-C at the prompt drops the line being typed; Ctrl-D (end of input) exits.
                if runner.takeInterrupt() { print(""); buffer = ""; clearerr(stdin); continue }
                break
            }
            buffer += buffer.isEmpty ? line : "\n" + line
            if buffer.trimmingCharacters(in: .whitespaces).isEmpty { buffer = ""; continue }
            if runner.interactive(buffer, print: { print($0); fflush(stdout) }) == .complete { buffer = "" }
        }
        if tty { print("") }
        return 0
    }
}
