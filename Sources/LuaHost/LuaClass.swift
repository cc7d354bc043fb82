import CLua

/// Binds a Swift class to a Lua userdata type: methods, read/write fields, metamethods.
/// The userdata holds one retained reference to the object, released by `__gc`.
/// `@unchecked Sendable`: its tables are filled once, in the static initializer that makes it,
/// before any Lua state registers it; after that they are only read.
public final class LuaClass<T: AnyObject>: @unchecked Sendable {
    public let name: String
    public typealias Method = (T, Lua) throws -> Int32
    var methods: [String: Method] = [:]
    var getters: [String: (T, Lua) throws -> Void] = [:]
    var setters: [String: (T, Lua) throws -> Void] = [:]
    var metamethods: [String: Method] = [:]

    public init(name: String) { self.name = name }

    /// `obj:name(...)`; the body reads its arguments from index 2 (self is 1).
    public func method(_ name: String, _ body: @escaping Method) { methods[name] = body }
    /// `obj.name`; the getter pushes exactly one value.
    public func getter(_ name: String, _ body: @escaping (T, Lua) throws -> Void) { getters[name] = body }
    /// `obj.name = v`; the value is at index 3.
    public func setter(_ name: String, _ body: @escaping (T, Lua) throws -> Void) { setters[name] = body }
    /// `__close`, `__tostring`, `__len`, ...
    public func meta(_ name: String, _ body: @escaping Method) { metamethods[name] = body }

    /// Creates the metatable in the state (once per state).
    public func register(in lua: Lua) {
        sl_newboxmeta(lua.L, name)
        let mt = lua.absIndex(-1)
        lua.push(name); lua.setField(mt, "__name")
        // __index: the methods table (a method is a plain table lookup, as liolib's), with
        // the getters and the unknown-name error as the fallback. The table is also kept in
        // the registry, to name what there is.
        lua.newTable()
        let mtab = lua.absIndex(-1)
        for (mname, body) in methods {
            lua.setFunction(mtab, mname) { l in
                let obj = try self.checkSelf(l)
                return try body(obj, l)
            }
        }
        lua.pushValue(mtab)
        lua.setRegistry(name + ".methods")
        let getters = self.getters, setters = self.setters, cname = name
        lua.push(function: "__index") { l in
            // fallback(obj, key): not a method.
            guard let key = l.string(2) else { l.pushNil(); return 1 }
            if let g = getters[key] {
                let obj = try self.check(l, 1, method: key)
                try g(obj, l)
                return 1
            }
            // An unknown name is an error that says what was meant (as pysftp's AttributeError),
            // not a nil that fails later as "attempt to call a nil value".
            var known = Array(getters.keys)
            l.getRegistry(cname + ".methods")
            l.forEach(-1) { if let k = l.string(-2), !k.hasPrefix("_") { known.append(k) } }
            l.pop()
            var m = "\(cname) has no method or field '\(key)'"
            if let near = closest(to: key, in: known) { m += " (did you mean '\(near)'?)" }
            throw LuaArgumentError(m, argument: key)
        }
        sl_pushindex(lua.L)
        lua.setField(mt, "__index")
        lua.setFunction(mt, "__newindex") { l in
            let key = l.string(2) ?? l.describe(2)
            guard let s = setters[key] else {
                var m = "cannot set field '\(key)' of \(cname)"
                if let near = closest(to: key, in: Array(setters.keys)) { m += " (did you mean '\(near)'?)" }
                throw LuaArgumentError(m, argument: key)
            }
            let obj = try self.check(l, 1, method: key)
            try s(obj, l)
            return 0
        }
        for (mname, body) in metamethods {
            lua.setFunction(mt, mname) { l in
                let obj = try self.checkSelf(l)
                return try body(obj, l)
            }
        }
        lua.pop() // metatable
    }

    /// Pushes a new userdata for `obj`.
    public func push(_ obj: T, in lua: Lua) {
        sl_newbox(lua.L, Unmanaged.passRetained(obj as AnyObject).toOpaque(), name)
    }

    /// The object a method is called on (argument 1), or an ArgumentError saying so.
    func checkSelf(_ lua: Lua) throws -> T {
        do { return try check(lua, 1, method: "") } catch var e as LuaArgumentError {
            e.isSelfCheck = true
            throw e
        }
    }

    /// The object behind the userdata at `i`, or an ArgumentError.
    public func check(_ lua: Lua, _ i: Int32, method: String) throws -> T {
        if let raw = sl_testbox(lua.L, i, name),
           let obj = Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? T {
            return obj
        }
        throw lua.typeError(i, expected: name)
    }
}
