import Foundation
import LuaHost
import SFTPCore

/// Error objects: tables `{kind=, message=, path=, code=}` with a shared metatable whose
/// `__tostring` gives "<kind>: <message>".
enum ErrorObject {
    static let metatable = "sftp.Error"

    static func register(_ lua: Lua) {
        lua.newMetatable(metatable)
        let mt = lua.absIndex(-1)
        lua.setFunction(mt, "__tostring") { l in
            l.getField(1, "kind")
            let kind = l.string(-1) ?? "Error"
            l.getField(1, "message")
            let message = l.string(-1) ?? ""
            l.pop(2)
            l.push("\(kind): \(message)")
            return 1
        }
        lua.pop()
    }

    /// Pushes a new error object.
    static func push(_ lua: Lua, kind: String, message: String, path: String? = nil, code: Int? = nil) {
        lua.newTable(nrec: 4)
        let t = lua.absIndex(-1)
        lua.set(t, "kind", kind)
        lua.set(t, "message", message)
        if let path { lua.set(t, "path", path) }
        if let code { lua.set(t, "code", Int64(code)) }
        lua.setMetatable(metatable)
    }

    /// The hook LuaHost calls for a Swift error thrown by a binding.
    static func pusher(_ lua: Lua, _ error: Error) {
        switch error {
        case let e as KindedError:
            push(lua, kind: e.kind.rawValue, message: e.message, path: e.path, code: e.number)
        case let e as LuaArgumentError:
            push(lua, kind: ErrorKind.argument.rawValue, message: e.message, path: nil)
            if let arg = e.argument { lua.set(-1, "argument", arg) }
        default:
            push(lua, kind: ErrorKind.io.rawValue, message: String(describing: error))
        }
    }

    /// The kind of the error object at `i`, if it is one.
    static func kind(_ lua: Lua, _ i: Int32) -> String? {
        guard lua.isTable(i) else { return nil }
        lua.getField(i, "kind")
        defer { lua.pop() }
        return lua.string(-1)
    }
}
