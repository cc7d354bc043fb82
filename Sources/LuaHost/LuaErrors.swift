/// Errors that a Swift function called from Lua throws. The dispatcher turns them into
/// Lua error values (through `LuaHost.errorPusher`) and the C trampoline raises them.
public enum LuaError: Error {
    /// A Lua value kept in the registry (for example what a Lua callback raised): re-raised unchanged.
    case value(ref: Int32)
    /// A plain message raised as a Lua string.
    case message(String)
}

/// A call made with a wrong argument. `message` reads like luaL's:
/// `bad argument #1 to 'get' (string expected, got number)`.
public struct LuaArgumentError: Error, CustomStringConvertible {
    public var message: String
    public var argument: String?
    /// For "bad argument #N" errors: the stack position and what is wrong. The dispatcher
    /// writes the message, as luaL_argerror does: the position a user sees (a method does not
    /// count self) and the function's name.
    public var position: Int32?
    public var detail: String?
    /// The argument is the object a method is called on (its check failed).
    public var isSelfCheck = false
    /// The function's name where Lua cannot tell the name it was called by (a function written
    /// in Lua that reports through a Swift one); else the Swift function's registered name.
    public var function: String?
    public init(_ message: String, argument: String? = nil) {
        self.message = message
        self.argument = argument
    }
    public init(position: Int32, _ detail: String) {
        self.message = "bad argument #\(position) (\(detail))"
        self.position = position
        self.detail = detail
    }
    public var description: String { message }
}

/// Levenshtein distance, for "did you mean" suggestions.
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.utf8), b = Array(b.utf8)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}

/// The closest of `candidates` to `word`, if any is reasonably close.
public func closest(to word: String, in candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }) else { return nil }
    return best.1 <= max(2, word.count / 2) ? best.0 : nil
}
