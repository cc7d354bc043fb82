import Foundation
import CLua

/// A Swift function that Lua can call; held in a userdata upvalue of a C trampoline.
final class FunctionBox {
    /// The name it was registered under: argument errors use it when Lua cannot tell the name
    /// the function was called by (as from `pcall(f, ...)`).
    let name: String
    let body: LuaFunction
    init(name: String, body: @escaping LuaFunction) {
        self.name = name
        self.body = body
    }
}

/// Hooks that the layer above LuaHost installs.
public enum LuaHost {
    /// How a state turns Swift errors into Lua values (set per state with `Lua.setErrorPusher`).
    final class ErrorPusher {
        let push: (Lua, Error) -> Void
        init(_ push: @escaping (Lua, Error) -> Void) { self.push = push }
    }
    static let pusherKey = "sftplua.errorpusher"
    static let pusherMeta = "sftplua.errorpusher.box"

    /// Pushes the Lua value for a Swift error: the state's pusher, else the description as a string.
    static func pushError(_ lua: Lua, _ error: Error) {
        lua.getRegistry(pusherKey)
        let raw = sl_testbox(lua.L, -1, pusherMeta)
        lua.pop()
        if let raw, let p = Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? ErrorPusher {
            p.push(lua, error)
        } else {
            lua.push(String(describing: error))
        }
    }
    // nonisolated(unsafe): set by the first LuaState, on the thread that creates it, before Lua runs.
    nonisolated(unsafe) static var installed = false

    static func install() {
        guard !installed else { return }
        installed = true
        sl_install(luaDispatch, luaRelease)
    }
}

private let boxMeta = "sftplua.function"

private let luaRelease: sl_release_fn = { ptr in
    guard let ptr else { return }
    Unmanaged<AnyObject>.fromOpaque(ptr).release()
}

/// Called by the C trampoline. Never lets a Swift error or a Lua error cross it:
/// errors become a value on top of the stack and SL_RAISE.
private let luaDispatch: sl_dispatch_fn = { L in
    guard let L else { return SL_RAISE }
    let lua = Lua(L)
    guard let raw = sl_testbox(L, sl_upvalueindex(1), boxMeta) else {
        lua.push("sftplua: function called after its state was closed")
        return SL_RAISE
    }
    let box = Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as! FunctionBox
    do {
        return try box.body(lua)
    } catch let LuaError.value(ref) {
        lua.pushRef(ref)
        lua.unref(ref)
        return SL_RAISE
    } catch let LuaError.message(m) {
        lua.push(m)
        return SL_RAISE
    } catch var e as LuaArgumentError {
        if let position = e.position, let detail = e.detail {
            e.message = argumentMessage(L, position: position, detail: detail, registered: e.function ?? box.name,
                                        selfHint: e.isSelfCheck)
        }
        e.message = e.message.replacingFirst("%FN%", with: box.name)
        LuaHost.pushError(lua, e)
        return SL_RAISE
    } catch {
        LuaHost.pushError(lua, error)
        return SL_RAISE
    }
}

/// "bad argument #N to 'f' (detail)", as luaL_argerror writes it: the name the function was
/// called by and whether it was called as a method come from `lua_getinfo` (through the C
/// helper); a method call does not count self, and a bad self is "calling 'f' on bad self".
private func argumentMessage(_ L: OpaquePointer, position: Int32, detail: String, registered: String, selfHint: Bool) -> String {
    var cname: UnsafePointer<CChar>?
    let method = sl_callinfo(L, &cname) != 0
    var name = cname.map { String(cString: $0) } ?? registered
    if name == "?" { name = registered }
    let shown = method ? position - 1 : position
    if shown == 0 { return "calling '\(name)' on bad self (\(detail))" }
    // A method called with '.' and no self: say how to call it.
    let hint = selfHint && !method && position == 1 ? "; call methods with ':'" : ""
    return "bad argument #\(shown) to '\(name)' (\(detail)\(hint))"
}

extension String {
    func replacingFirst(_ what: String, with: String) -> String {
        let parts = self.components(separatedBy: what)
        guard parts.count > 1 else { return self }
        return parts[0] + with + parts.dropFirst().joined(separator: what)
    }
}

extension Lua {
    /// Sets how this state turns Swift errors thrown by bound functions into Lua values.
    public func setErrorPusher(_ push: @escaping (Lua, Error) -> Void) {
        sl_newbox(L, Unmanaged.passRetained(LuaHost.ErrorPusher(push) as AnyObject).toOpaque(), LuaHost.pusherMeta)
        setRegistry(LuaHost.pusherKey)
    }

    /// Pushes a Lua function that calls `body`. `name` fills in argument error messages where
    /// Lua cannot tell the name it was called by.
    public func push(function name: String, _ body: @escaping LuaFunction) {
        LuaHost.install()
        let box = FunctionBox(name: name, body: body)
        sl_newbox(L, Unmanaged.passRetained(box as AnyObject).toOpaque(), boxMeta)
        sl_pushtrampoline(L)
    }

    /// Registers `body` as field `name` of the table at `table`.
    public func setFunction(_ table: Int32, _ name: String, _ body: @escaping LuaFunction) {
        let t = absIndex(table)
        push(function: name, body)
        setField(t, name)
    }

    // MARK: calling Lua from Swift

    /// Calls the function at `fn` (an index) with `nargs` arguments already pushed after a copy of it.
    /// On error the raised value is kept and rethrown as `LuaError.value`, so it reaches the
    /// outer Lua caller unchanged. Leaves `nresults` results on the stack.
    public func pcall(nargs: Int32, nresults: Int32) throws {
        if sl_pcall(L, nargs, nresults) != LUA_OK {
            throw LuaError.value(ref: ref())
        }
    }

    /// Calls the function at stack index `fn` with the arguments `pushArgs` pushes (it returns
    /// their count), protected; leaves `nresults` results on the stack.
    public func call(_ fn: Int32, nresults: Int32 = 0, _ pushArgs: () -> Int32) throws {
        let f = absIndex(fn)
        checkStack(20)
        pushValue(f)
        let n = pushArgs()
        try pcall(nargs: n, nresults: nresults)
    }
}

// MARK: argument checks (luaL_check* without raising)

extension Lua {
    /// "bad argument #i to 'f' (what)": the dispatcher names the function and, for a method,
    /// counts the arguments without self (as luaL_argerror).
    public func argError(_ i: Int32, _ what: String) -> LuaArgumentError {
        LuaArgumentError(position: i, what)
    }
    public func typeError(_ i: Int32, expected: String) -> LuaArgumentError {
        let got = isNoneOrNil(i) && type(i) == LUA_TNONE ? "no value" : typeName(i)
        return argError(i, "\(expected) expected, got \(got)")
    }
    public func checkString(_ i: Int32) throws -> String {
        guard let s = string(i) else { throw typeError(i, expected: "string") }
        return s
    }
    public func optString(_ i: Int32) throws -> String? {
        if isNoneOrNil(i) { return nil }
        return try checkString(i)
    }
    public func checkInteger(_ i: Int32) throws -> Int64 {
        guard type(i) == LUA_TNUMBER else { throw typeError(i, expected: "number") }
        guard let v = integer(i) else { throw argError(i, "number has no integer representation") }
        return v
    }
    public func optInteger(_ i: Int32) throws -> Int64? {
        if isNoneOrNil(i) { return nil }
        return try checkInteger(i)
    }
    public func optNumber(_ i: Int32) throws -> Double? {
        if isNoneOrNil(i) { return nil }
        guard let v = number(i) else { throw typeError(i, expected: "number") }
        return v
    }
    public func optBoolean(_ i: Int32) throws -> Bool? {
        if isNoneOrNil(i) { return nil }
        guard type(i) == LUA_TBOOLEAN else { throw typeError(i, expected: "boolean") }
        return boolean(i)
    }
    /// nil or the absolute index of a function argument.
    public func optFunction(_ i: Int32) throws -> Int32? {
        if isNoneOrNil(i) { return nil }
        guard isFunction(i) else { throw typeError(i, expected: "function") }
        return absIndex(i)
    }
    public func checkFunction(_ i: Int32) throws -> Int32 {
        guard isFunction(i) else { throw typeError(i, expected: "function") }
        return absIndex(i)
    }
}
