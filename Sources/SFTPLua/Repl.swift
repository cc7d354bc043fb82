import Foundation
import LuaHost

extension Runner {
    public enum ChunkStatus { case complete, incomplete }

    /// Evaluates one interactive chunk as `lua` does: an expression's values are printed
    /// (pretty), a statement is run, an unfinished chunk asks for more. Errors are printed.
    public func interactive(_ code: String, print out: (String) -> Void) -> ChunkStatus {
        let l = state.lua
        l.top = 0
        var loaded = (try? state.load("return " + code, name: "=stdin")) != nil
        if !loaded {
            do {
                try state.load(code, name: "=stdin")
                loaded = true
            } catch LuaState.Failure.load(let message) {
                if message.hasSuffix("<eof>") { return .incomplete }
                stderr(message + "\n")
                return .complete
            } catch {
                stderr("\(error)\n")
                return .complete
            }
        }
        do {
            let n = try state.call()
            if n > 0 {
                var parts: [String] = []
                l.getGlobal("sftp")
                let m = l.top
                for i in 1...n {
                    l.getField(m, "pretty")
                    l.pushValue(i)
                    if (try? l.pcall(nargs: 1, nresults: 1)) != nil, let s = l.string(-1) {
                        parts.append(s)
                    } else {
                        parts.append(l.describe(i))
                    }
                    l.top = m
                }
                out(parts.joined(separator: "\t"))
            }
        } catch LuaState.Failure.runtime(let ref, let message, let whereAt, _) {
            l.unref(ref)
            stderr(message.hasPrefix(whereAt) ? message + "\n" : "\(whereAt): \(message)\n")
        } catch {
            stderr("\(error)\n")
        }
        l.top = 0
        return .complete
    }
}
