import ArgumentParser
import ByteString
import CLineEdit
import Foundation
import SFTPLua

struct Repl: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Interactive Lua with the sftp module.",
        discussion: """
        Expressions print their values (tables pretty-printed); an unfinished statement continues on \
        the next line. Tab completes globals, fields and Connection methods, and remote names inside a \
        string argument of a Connection method. History is kept in \
        ~/.sftplua_history ($SFTPLUA_HISTORY overrides; ~ is $HOME). Ctrl-C interrupts the running \
        statement or transfer (or drops the line being typed); Ctrl-D exits.
        """
    )

    @Option(help: "Connect to HOST (or an alias from ~/.ssh/config) first and bind the connection to the global `c`.")
    var connect: String?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let status = Repl.loop(connect: connect, global: global)
        if status != 0 { throw ExitCode(status) }
    }

    /// `c = sftp.connect{...}` for `--connect [user@]host[:port]` (or an ssh_config alias).
    static func connectChunk(_ target: String) -> String {
        // A Lua string literal: quote and backslash escaped; control bytes and the bytes of
        // non-ASCII characters as \ddd (Lua turns them back into the same bytes).
        func q(_ s: String) -> String {
            var out = "\""
            for b in s.utf8 {
                switch b {
                case UInt8(ascii: "\\"), UInt8(ascii: "\""): out += "\\" + String(UnicodeScalar(b))
                case 0..<0x20, 0x7f...0xff: out += String(format: "\\%03d", b)
                default: out.unicodeScalars.append(UnicodeScalar(b))
                }
            }
            return out + "\""
        }
        var host = target
        var fields: [String] = []
        if let at = host.lastIndex(of: "@") {
            fields.append("username = " + q(String(host[..<at])))
            host = String(host[host.index(after: at)...])
        }
        if let colon = host.lastIndex(of: ":"), !host.contains("]") || host.hasPrefix("["),
           let port = Int(host[host.index(after: colon)...]), host.filter({ $0 == ":" }).count == 1 || host.hasPrefix("[") {
            fields.append("port = \(port)")
            host = String(host[..<colon])
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        fields.insert("host = " + q(host), at: 0)
        return "c = sftp.connect{" + fields.joined(separator: ", ") + "}"
    }

    /// The runner the completion callback asks (the REPL has one).
    // nonisolated(unsafe): set once before the loop; libedit calls the completer on this thread.
    nonisolated(unsafe) static var active: Runner?

    /// The REPL, from setting up to end of input; the exit status.
    static func loop(connect: String?, global: GlobalOptions = GlobalOptions()) -> Int32 {
        let runner: Runner
        do { runner = try Runner() } catch { FileHandle.standardError.write(Data("sftplua: \(error)\n".utf8)); return 1 }
        if let status = prepare(runner, connect: connect, global: global) { return status }
        defineHelpers(runner)
        let tty = isatty(0) != 0 && isatty(1) != 0
        let input: (String) -> String?
        let remember: (String) -> Void
        if tty {
            (input, remember) = lineEditor(runner)
            greet(runner, connected: connect != nil)
        } else {
            let lines = StdinLines()
            input = { _ in lines.next(interrupted: { runner.interruptPending }) }
            remember = { _ in }
        }
        readEvaluate(runner, tty: tty, input: input, remember: remember)
        if tty { print("") }
        return 0
    }

    /// The runner made ready: script arguments, interrupts, the global options, and the
    /// `--connect` connection; the exit status when that connection fails, else nil.
    private static func prepare(_ runner: Runner, connect: String?, global: GlobalOptions) -> Int32? {
        runner.setArgs(script: "repl", args: [])
        runner.enableInterrupts()
        global.apply(to: runner)
        if let target = connect {
            let st = runner.runString(connectChunk(target), name: "=connect")
            if st != .ok { return st.rawValue }
        }
        return nil
    }

    /// REPL helpers: help() and an ls -l view of the connection's directories.
    private static func defineHelpers(_ runner: Runner) {
        _ = runner.runString("""
        help = sftp.help
        function ls(path)
          if type(c) ~= "userdata" then error("ls: no connection: start with --connect, or c = sftp.connect{...}", 2) end
          for _, e in ipairs(c:listdir_attr(path or ".")) do print(e.longname ~= "" and e.longname or e.filename) end
        end
        """, name: "=repl")
    }

    /// On a terminal, lines come from libedit: history kept in the history file, Tab asking the
    /// runner for completions.
    private static func lineEditor(_ runner: Runner) -> (input: (String) -> String?, remember: (String) -> Void) {
        let env = ProcessInfo.processInfo.environment
        let home = env["HOME"] ?? NSHomeDirectory()
        let history = env["SFTPLUA_HISTORY"] ?? home + "/.sftplua_history"
        active = runner
        sl_edit_init(history, { word, line in
            guard let runner = Repl.active, let word, let line else { return nil }
            let found = runner.completions(for: String(cString: word), line: String(cString: line))
            guard !found.isEmpty else { return nil }
            let out = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: found.count + 1)
            for (i, s) in found.enumerated() { out[i] = strdup(s) }
            out[found.count] = nil
            return out
        })
        let input: (String) -> String? = { prompt in
            guard let p = sl_edit_readline(prompt) else { return nil }
            defer { free(p) }
            return ByteString.string(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: strlen(p)))
        }
        return (input, { line in ByteString.withCString(line) { sl_edit_remember($0, history, 1000) } })
    }

    /// The terminal's greeting: the version and keys, and what `c` is when connected.
    private static func greet(_ runner: Runner, connected: Bool) {
        print("sftplua \(SFTPModule.version) (Lua 5.4); Ctrl-D to exit, Ctrl-C to interrupt; help() for what there is")
        if connected {
            _ = runner.runString("print(('c is your connection, %s; ls() lists its directory, help(c.get) shows a method'):format(tostring(c)))", name: "=banner")
        }
    }

    /// Reads and runs until end of input: lines gather until a statement is complete (then it
    /// runs and goes to the history); Ctrl-C drops what was typed.
    private static func readEvaluate(_ runner: Runner, tty: Bool, input: (String) -> String?, remember: (String) -> Void) {
        var buffer = ""
        var lines = 0
        while lines < Int.max - 1 {
            lines += 1
            _ = runner.takeInterrupt()
            guard let line = input(buffer.isEmpty ? "> " : ">> ") else {
                // Ctrl-C at the prompt drops what was typed; end of input (Ctrl-D) exits.
                if runner.takeInterrupt() {
                    if tty { print("") }
                    buffer = ""
                    sl_edit_clear_input_error()
                    continue
                }
                break
            }
            if runner.takeInterrupt() { buffer = ""; continue }
            buffer += buffer.isEmpty ? line : "\n" + line
            if buffer.trimmingCharacters(in: .whitespaces).isEmpty { buffer = ""; continue }
            if runner.interactive(buffer, print: writeLine) == .complete {
                remember(buffer)
                buffer = ""
            }
        }
    }
}

/// A result line on stdout, as bytes (ByteString: a name from the server keeps its bytes), through
/// C's stdout as Lua's `print` writes, so the two keep their order.
private func writeLine(_ s: String) {
    let bytes = ByteString.bytes(s)
    bytes.withUnsafeBufferPointer { b in
        b.withMemoryRebound(to: CChar.self) { sl_edit_write_line($0.baseAddress, UInt($0.count)) }
    }
}

/// Lines of standard input when it is not a terminal, read with read(2): bytes as they are
/// (ByteString), a CRLF ending taken as LF (as readLine did), and a Ctrl-C ends the wait (nil with
/// the request pending, as at the prompt) without ending the input; any other interrupted read
/// is retried. Lines are cut from one buffer by a moving head (no copy of the rest per line).
final class StdinLines {
    private var buffered: [UInt8] = []
    private var head = 0
    private var chunk = [UInt8](repeating: 0, count: 1 << 16)
    private var ended = false

    private func take(upTo end: Int, skip: Int) -> String {
        var line = buffered[head..<end]
        if line.last == 13 { line = line.dropLast() }
        head = end + skip
        if head >= 1 << 16 || head == buffered.count { buffered.removeFirst(head); head = 0 }
        return ByteString.string(line)
    }

    func next(interrupted: () -> Bool) -> String? {
        var rounds = 0
        while rounds < 100_000_000 {
            rounds += 1
            if let nl = buffered[head...].firstIndex(of: 10) { return take(upTo: nl, skip: 1) }
            if ended { return head < buffered.count ? take(upTo: buffered.count, skip: 0) : nil }
            let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n > 0 {
                buffered += chunk[..<n]
            } else if n < 0, errno == EINTR {
                if interrupted() { return nil }
            } else {
                ended = true   // end of input, or a read error
            }
        }
        return nil
    }
}
