import CLua

/// A validated options table: unknown keys are refused (with the closest valid key suggested),
/// and each getter checks the value's type, naming the option in its error.
public struct LuaOptions {
    public let lua: Lua
    /// Absolute index of the table, or nil when the argument was nil/absent.
    public let index: Int32?
    public let function: String

    /// Reads the options table at `i` (nil or absent gives an empty one).
    /// `arrayPart`: integer keys are the caller's business (a recipe's rules); without it, any
    /// key that is not an allowed name is refused.
    public init(_ lua: Lua, _ i: Int32, allowed: [String], function: String = "%FN%",
                arrayPart: Bool = true) throws {
        self.lua = lua
        self.function = function
        if lua.isNoneOrNil(i) {
            index = nil
            return
        }
        guard lua.isTable(i) else { throw lua.typeError(i, expected: "table") }
        let t = lua.absIndex(i)
        index = t
        guard let bad = Self.unknownKey(lua, t, allowed: allowed, arrayPart: arrayPart) else { return }
        if let key = bad.name {
            var m = "unknown option '\(key)' to '\(function)'"
            if let near = closest(to: key, in: allowed) { m += " (did you mean '\(near)'?)" }
            throw LuaArgumentError(m, argument: key)
        }
        guard bad.typeName == "number" else {
            throw LuaArgumentError("bad option key to '\(function)' (string expected, got \(bad.typeName))")
        }
        throw LuaArgumentError("unknown option '\(bad.shown)' to '\(function)'" + (allowed.isEmpty ? " (it takes none)" : ""))
    }

    /// A key that is not one of the allowed names: the name (nil when the key is not a string),
    /// how Lua shows it, and its type.
    public struct UnknownKey {
        public let name: String?
        public let shown: String
        public let typeName: String
    }

    /// The first key of the table at `t` that is not one of `allowed`, or nil. With `arrayPart`,
    /// number keys are the caller's business. The one check of every options table, and of
    /// recipes (`core.unknown_key`).
    public static func unknownKey(_ lua: Lua, _ t: Int32, allowed: [String], arrayPart: Bool) -> UnknownKey? {
        let allowedSet = Set(allowed)
        var found: UnknownKey?
        lua.forEach(t) {
            guard found == nil else { return }
            // (The type first: lua_tolstring on a number key would change the key under lua_next.)
            if lua.type(-2) == LUA_TSTRING, let key = lua.string(-2) {
                if !allowedSet.contains(key) { found = UnknownKey(name: key, shown: key, typeName: "string") }
            } else if !(arrayPart && lua.type(-2) == LUA_TNUMBER) {
                found = UnknownKey(name: nil, shown: lua.describe(-2), typeName: lua.typeName(-2))
            }
        }
        return found
    }

    public var isEmpty: Bool { index == nil }

    func bad(_ key: String, _ expected: String) -> LuaArgumentError {
        LuaArgumentError("bad option '\(key)' to '\(function)' (\(expected) expected, got \(lua.typeName(-1)))", argument: key)
    }

    /// Pushes the raw value of `key`, runs body, pops it.
    func with<R>(_ key: String, _ body: () throws -> R?) rethrows -> R? {
        guard let t = index else { return nil }
        lua.getField(t, key)
        defer { lua.pop() }
        if lua.isNoneOrNil(-1) { return nil }
        return try body()
    }

    public func has(_ key: String) -> Bool { with(key) { true } ?? false }

    public func string(_ key: String) throws -> String? {
        try with(key) {
            guard let s = lua.string(-1) else { throw bad(key, "string") }
            return s
        }
    }
    public func integer(_ key: String) throws -> Int64? {
        try with(key) {
            guard lua.type(-1) == LUA_TNUMBER else { throw bad(key, "number") }
            guard let v = lua.integer(-1) else {
                throw LuaArgumentError("bad option '\(key)' to '\(function)' (number has no integer representation)", argument: key)
            }
            return v
        }
    }
    public func number(_ key: String) throws -> Double? {
        try with(key) {
            guard let v = lua.number(-1) else { throw bad(key, "number") }
            return v
        }
    }
    public func bool(_ key: String) throws -> Bool? {
        try with(key) {
            guard lua.type(-1) == LUA_TBOOLEAN else { throw bad(key, "boolean") }
            return lua.boolean(-1)
        }
    }
    /// A string or a boolean (e.g. `log = true | path`).
    public func stringOrBool(_ key: String) throws -> Either? {
        try with(key) {
            if lua.type(-1) == LUA_TBOOLEAN { return .bool(lua.boolean(-1)) }
            if let s = lua.string(-1) { return .string(s) }
            throw bad(key, "string or boolean")
        }
    }
    public enum Either: Equatable { case bool(Bool), string(String) }

    /// An array of strings (a single string is accepted as a one-element array).
    public func strings(_ key: String) throws -> [String]? {
        try with(key) {
            if let s = lua.string(-1) { return [s] }
            guard lua.isTable(-1) else { throw bad(key, "array of strings") }
            var out: [String] = []
            let n = lua.rawLength(-1)
            for k in 0..<n {
                lua.getIndex(-1, k + 1)
                defer { lua.pop() }
                guard let s = lua.string(-1) else { throw bad(key + "[\(k + 1)]", "string") }
                out.append(s)
            }
            return out
        }
    }
    /// Checks that `key`, when given, has the type `type` ("string", "number", "integer",
    /// "boolean", "function", "table"): the getters' rule and message, for callers that keep the
    /// value where it is (the Lua library's options, through `core.check_opts`).
    public func check(_ key: String, is type: String) throws {
        switch type {
        case "string": _ = try string(key)
        case "number": _ = try number(key)
        case "integer": _ = try integer(key)
        case "boolean": _ = try bool(key)
        case "function": if try function(key) != nil { lua.pop() }
        default:
            _ = try with(key) { () -> Bool? in
                guard lua.typeName(-1) == type else { throw bad(key, type) }
                return true
            }
        }
    }

    /// Absolute stack index of a function option (it stays reachable through the options table).
    public func function(_ key: String) throws -> Int32? {
        guard let t = index else { return nil }
        lua.getField(t, key)
        if lua.isNoneOrNil(-1) { lua.pop(); return nil }
        guard lua.isFunction(-1) else { defer { lua.pop() }; throw bad(key, "function") }
        return lua.absIndex(-1) // left on the stack for the duration of the call
    }
}
