import ByteString
import CLua

/// Owns one Lua state (the standard libraries opened). `lua_close` runs in deinit,
/// which also runs every pending `__gc`, releasing the Swift objects userdata hold.
public final class LuaState {
    public let L: OpaquePointer
    public var lua: Lua { Lua(L) }

    /// The outcome of running a chunk under `run`.
    public enum Failure: Error {
        /// Could not load (syntax error, unreadable file): the message has file and line.
        case load(String)
        /// A runtime error: the raised value is kept at `ref`, with where it happened and a traceback.
        case runtime(ref: Int32, message: String, where: String, traceback: String)
    }

    public init() {
        LuaHost.install()
        guard let L = luaL_newstate() else { fatalError("sftplua: out of memory creating a Lua state") }
        self.L = L
        luaL_openlibs(L)
    }

    deinit { lua_close(L) }

    /// Loads a chunk from a string. Pushes the function on success.
    public func load(_ code: String, name: String) throws {
        // The chunk's bytes (ByteString: code from the command line may hold any bytes).
        let bytes = ByteString.bytes(code)
        let status = bytes.withUnsafeBufferPointer { buf in
            buf.withMemoryRebound(to: CChar.self) { sl_loadbuffer(L, $0.baseAddress, $0.count, name) }
        }
        if status != LUA_OK {
            let msg = lua.describe(-1)
            lua.pop()
            throw Failure.load(msg)
        }
    }

    /// Loads a file (`@path` chunk name, so messages say `path:line:`). Pushes the function.
    public func loadFile(_ path: String) throws {
        if ByteString.withCString(path, { luaL_loadfilex(L, $0, "bt") }) != LUA_OK {
            let msg = lua.describe(-1)
            lua.pop()
            throw Failure.load(msg)
        }
    }

    /// Calls the function below `nargs` arguments, recording where an error happened.
    /// Returns the number of results left on the stack (all of them).
    @discardableResult
    public func call(nargs: Int32 = 0) throws -> Int32 {
        let base = lua.top - nargs - 1
        if sl_pcall_traced(L, nargs, LUA_MULTRET) != LUA_OK {
            let message = lua.describe(-1)
            lua.getRegistry("sftplua.errwhere")
            let whereAt = lua.string(-1) ?? "?"
            lua.pop()
            lua.getRegistry("sftplua.errtrace")
            let trace = lua.string(-1) ?? ""
            lua.pop()
            let ref = lua.ref()
            throw Failure.runtime(ref: ref, message: message, where: whereAt, traceback: trace)
        }
        return lua.top - base
    }

    /// Runs `code` and returns its results converted with `describe` (for tests and the REPL).
    public func eval(_ code: String, name: String = "=eval") throws -> [String] {
        let base = lua.top
        try load(code, name: name)
        let n = try call()
        var out: [String] = []
        for i in 0..<n { out.append(lua.describe(base + 1 + i)) }
        lua.top = base
        return out
    }
}
