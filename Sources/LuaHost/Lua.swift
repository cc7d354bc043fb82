import ByteString
import CLua

public typealias LuaFunction = (Lua) throws -> Int32

/// A view of one Lua thread's stack, handed to Swift functions that Lua calls.
/// Nothing here raises a Lua error: reading is done with non-raising API calls and
/// anything that could run a metamethod goes through a protected helper in C.
public struct Lua {
    public let L: OpaquePointer

    public init(_ L: OpaquePointer) { self.L = L }

    // MARK: stack
    public var top: Int32 {
        get { lua_gettop(L) }
        nonmutating set { lua_settop(L, newValue) }
    }
    public func pop(_ n: Int32 = 1) { sl_pop(L, n) }
    public func absIndex(_ i: Int32) -> Int32 { lua_absindex(L, i) }
    public func pushValue(_ i: Int32) { lua_pushvalue(L, i) }
    public func remove(_ i: Int32) { sl_remove(L, i) }
    public func insert(_ i: Int32) { sl_insert(L, i) }
    @discardableResult public func checkStack(_ n: Int32) -> Bool { lua_checkstack(L, n) != 0 }

    // MARK: types
    public func type(_ i: Int32) -> Int32 { lua_type(L, i) }
    public func typeName(_ i: Int32) -> String {
        if let box = objectTypeName(i) { return box }
        return String(cString: lua_typename(L, lua_type(L, i)))
    }
    /// `__name` of a userdata's or table's metatable, as luaL_typeerror reports it.
    private func objectTypeName(_ i: Int32) -> String? {
        guard lua_getmetatable(L, i) != 0 else { return nil }
        defer { pop() }
        lua_pushstring(L, "__name")
        lua_rawget(L, -2)
        defer { pop() }
        guard lua_type(L, -1) == LUA_TSTRING, let s = lua_tolstring(L, -1, nil) else { return nil }
        return String(cString: s)
    }
    public func isNoneOrNil(_ i: Int32) -> Bool { sl_isnoneornil(L, i) != 0 }
    public func isString(_ i: Int32) -> Bool { lua_type(L, i) == LUA_TSTRING }
    public func isFunction(_ i: Int32) -> Bool { lua_type(L, i) == LUA_TFUNCTION }
    public func isTable(_ i: Int32) -> Bool { lua_type(L, i) == LUA_TTABLE }

    // MARK: reading (no conversions that could raise)
    /// The bytes of a string at `i` (numbers are not converted).
    public func bytes(_ i: Int32) -> [UInt8]? {
        guard lua_type(L, i) == LUA_TSTRING else { return nil }
        var len = 0
        guard let p = lua_tolstring(L, i, &len) else { return nil }
        return p.withMemoryRebound(to: UInt8.self, capacity: len) { Array(UnsafeBufferPointer(start: $0, count: len)) }
    }
    /// Calls `body` with the raw bytes of the string at `i` without copying them.
    public func withBytes<R>(_ i: Int32, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        guard lua_type(L, i) == LUA_TSTRING else { return nil }
        var len = 0
        guard let p = lua_tolstring(L, i, &len) else { return nil }
        return try body(UnsafeRawBufferPointer(start: p, count: len))
    }
    /// The string at `i` as a Swift String that keeps its exact bytes (`ByteString`): a name
    /// that is not UTF-8 comes back unchanged when pushed or used as a path.
    public func string(_ i: Int32) -> String? {
        guard lua_type(L, i) == LUA_TSTRING else { return nil }
        var len = 0
        guard let p = lua_tolstring(L, i, &len) else { return nil }
        return p.withMemoryRebound(to: UInt8.self, capacity: len) {
            ByteString.string(UnsafeBufferPointer(start: $0, count: len))
        }
    }
    public func integer(_ i: Int32) -> Int64? {
        guard lua_type(L, i) == LUA_TNUMBER else { return nil }
        var ok: Int32 = 0
        let v = sl_tointeger(L, i, &ok)
        return ok != 0 ? Int64(v) : nil
    }
    public func number(_ i: Int32) -> Double? {
        guard lua_type(L, i) == LUA_TNUMBER else { return nil }
        var ok: Int32 = 0
        let v = sl_tonumber(L, i, &ok)
        return ok != 0 ? Double(v) : nil
    }
    public func boolean(_ i: Int32) -> Bool { lua_toboolean(L, i) != 0 }
    /// `tostring(v)` honouring `__tostring`, run protected.
    public func describe(_ i: Int32) -> String {
        var len = 0
        let p = sl_safe_tostring(L, i, &len)
        defer { pop() }
        guard let p else { return "?" }
        return p.withMemoryRebound(to: UInt8.self, capacity: len) {
            String(decoding: UnsafeBufferPointer(start: $0, count: len), as: UTF8.self)
        }
    }

    // MARK: pushing
    public func pushNil() { lua_pushnil(L) }
    public func push(_ v: Bool) { lua_pushboolean(L, v ? 1 : 0) }
    public func push(_ v: Int) { lua_pushinteger(L, lua_Integer(v)) }
    public func push(_ v: Int64) { lua_pushinteger(L, lua_Integer(v)) }
    public func push(_ v: UInt64) { lua_pushinteger(L, lua_Integer(truncatingIfNeeded: v)) }
    public func push(_ v: Double) { lua_pushnumber(L, v) }
    /// Pushes `v`'s bytes: those it was made from (`ByteString`), else its UTF-8.
    public func push(_ v: String) {
        ByteString.bytes(v).withUnsafeBytes { push(bytes: $0) }
    }
    public func push(bytes: UnsafeRawBufferPointer) {
        sl_pushlstring(L, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
    }
    public func push(bytes: [UInt8]) { bytes.withUnsafeBytes { push(bytes: $0) } }
    public func push(_ v: String?) { if let v { push(v) } else { pushNil() } }
    public func newTable(narr: Int32 = 0, nrec: Int32 = 0) { lua_createtable(L, narr, nrec) }
    /// Pushes an array of strings as a sequence.
    public func push(strings: [String]) {
        newTable(narr: Int32(clamping: strings.count))
        for (n, s) in strings.enumerated() {
            push(s)
            lua_rawseti(L, -2, lua_Integer(n + 1))
        }
    }

    // MARK: tables (raw access: option tables are plain tables)
    /// t[key] = value on top of the stack (raw), t at `table`.
    public func setField(_ table: Int32, _ key: String) {
        let t = absIndex(table)
        push(key)
        insert(-2)
        lua_rawset(L, t)
    }
    /// Pushes t[key] (raw).
    @discardableResult public func getField(_ table: Int32, _ key: String) -> Int32 {
        let t = absIndex(table)
        push(key)
        return lua_rawget(L, t)
    }
    /// Pushes t[key], honouring __index, run protected (nil on error).
    public func getFieldProtected(_ table: Int32, _ key: String) { _ = sl_safe_getfield(L, table, key) }
    public func setIndex(_ table: Int32, _ n: Int) { lua_rawseti(L, absIndex(table), lua_Integer(n)) }
    @discardableResult public func getIndex(_ table: Int32, _ n: Int) -> Int32 { lua_rawgeti(L, absIndex(table), lua_Integer(n)) }
    public func rawLength(_ i: Int32) -> Int { Int(lua_rawlen(L, i)) }
    public func set(_ table: Int32, _ key: String, _ value: String?) { let t = absIndex(table); push(value); setField(t, key) }
    public func set(_ table: Int32, _ key: String, _ value: Int64?) {
        let t = absIndex(table)
        if let value { push(value) } else { pushNil() }
        setField(t, key)
    }
    public func set(_ table: Int32, _ key: String, _ value: Bool) { let t = absIndex(table); push(value); setField(t, key) }

    /// Calls `body` for each key/value pair of the table at `table` (key at -2, value at -1).
    public func forEach(_ table: Int32, _ body: () throws -> Void) rethrows {
        let t = absIndex(table)
        pushNil()
        while lua_next(L, t) != 0 {
            let mark = top
            try body()
            top = mark
            pop() // value; key stays for lua_next
        }
    }

    // MARK: registry
    public func getRegistry(_ key: String) { sl_getregistryfield(L, key) }
    public func setRegistry(_ key: String) { sl_setregistryfield(L, key) }
    /// Pops the top value into the registry and returns a reference to it.
    public func ref() -> Int32 { sl_ref(L) }
    public func pushRef(_ ref: Int32) { sl_getref(L, ref) }
    public func unref(_ ref: Int32) { sl_unref(L, ref) }

    // MARK: globals
    public func setGlobal(_ name: String) { lua_setglobal(L, name) }
    public func getGlobal(_ name: String) { lua_getglobal(L, name) }
}

// MARK: what the bindings need without reaching into the C API (SFTPLua imports no CLua)

extension Lua {
    /// Creates the registry metatable `name` if new (luaL_newmetatable) and pushes it.
    @discardableResult public func newMetatable(_ name: String) -> Bool { luaL_newmetatable(L, name) != 0 }
    /// Sets the registry metatable `name` on the value on top (luaL_setmetatable).
    public func setMetatable(_ name: String) { luaL_setmetatable(L, name) }
    /// Registers the table at `table` as module `name` (package.loaded[name], as luaL_requiref).
    public func registerModule(_ name: String, table: Int32) { sl_requiref(L, name, absIndex(table)) }
    /// Pops key and value (pushed in that order) into the table at `table`, raw.
    public func rawSet(_ table: Int32) { lua_rawset(L, table) }
    /// Is the value at `i` a number (not a string that converts)?
    public func isNumber(_ i: Int32) -> Bool { lua_type(L, i) == LUA_TNUMBER }
    /// Pushes the number `text` converts to, as Lua's own conversion (integers, floats, hex);
    /// false (nothing pushed) when it is not a numeral.
    public func pushNumeral(_ text: String) -> Bool { lua_stringtonumber(L, text) != 0 }
}

/// Chunk names of the embedded library: "=[sftplua mirror.lua]" (positions and
/// tracebacks leave those frames out).
public enum LuaLibrary {
    public static let chunkPrefix: String = SL_LIBRARY_CHUNK
    /// The chunk name (for `load`) of a library file.
    public static func chunkName(_ file: String) -> String { "=" + chunkPrefix + file + "]" }
}

/// Ctrl-C: SIGINT sets a flag and arms a hook that raises an error object (`errorMetatable`) in
/// the running Lua code; Swift loops poll `pending()`.
public enum LuaInterrupt {
    public static func install(_ lua: Lua, errorMetatable: String) { sl_interrupt_install(lua.L, errorMetatable) }
    public static func pending() -> Bool { sl_interrupt_pending() != 0 }
    /// Takes the request (true when there was one) and disarms the hook: the one clear, in C.
    @discardableResult
    public static func clear() -> Bool { sl_interrupt_clear() != 0 }
    /// Requests taken so far, by the hook or by `clear` (read from any thread).
    public static func taken() -> Int { Int(sl_interrupt_taken()) }
}
