import CLua
import Foundation
import LuaHost
import Testing

final class Counted {
    // nonisolated(unsafe): only the tests of `LuaHostTests` use `Counted`, and that suite is
    // `.serialized` (one test at a time); each test makes, collects and counts its objects on
    // its own thread (deinit runs in the Lua state's garbage collection, on that thread), so
    // the counter is never touched by two threads at once.
    nonisolated(unsafe) static var live = 0
    var closed = 0
    init() { Counted.live += 1 }
    deinit { Counted.live -= 1 }
}

@Suite(.serialized) struct LuaHostTests {
    @Test func evaluatesChunks() throws {
        let s = LuaState()
        #expect(try s.eval("return 1 + 1, 'x'") == ["2", "x"])
    }

    @Test func syntaxErrorsNameTheChunkAndLine() throws {
        let s = LuaState()
        #expect(throws: LuaState.Failure.self) { try s.load("x = = 1", name: "@recipe.lua") }
        do { try s.load("\n\nx = = 1", name: "@recipe.lua") } catch LuaState.Failure.load(let m) {
            #expect(m.hasPrefix("recipe.lua:3:"))
        }
    }

    @Test func swiftErrorsBecomeLuaErrorsWithoutUnwindingSwift() throws {
        let s = LuaState()
        let l = s.lua
        l.push(function: "boom") { _ in throw LuaError.message("kaboom") }
        l.setGlobal("boom")
        #expect(try s.eval("local ok, e = pcall(boom); return ok, e") == ["false", "kaboom"])
    }

    @Test func argumentErrorsReadLikeLuaL() throws {
        let s = LuaState()
        let l = s.lua
        l.push(function: "get") { l in _ = try l.checkString(1); return 0 }
        l.setGlobal("get")
        #expect(try s.eval("return select(2, pcall(get, 42))") == ["bad argument #1 to 'get' (string expected, got number)"])
        #expect(try s.eval("return select(2, pcall(get))") == ["bad argument #1 to 'get' (string expected, got no value)"])
    }

    @Test func unknownOptionsSuggestTheClosestKey() throws {
        let s = LuaState()
        let l = s.lua
        l.push(function: "get") { l in
            let o = try LuaOptions(l, 1, allowed: ["callback", "preserve_mtime"], function: "get")
            l.push(try o.bool("preserve_mtime") ?? false)
            return 1
        }
        l.setGlobal("get")
        #expect(try s.eval("return get{preserve_mtime = true}") == ["true"])
        #expect(try s.eval("return select(2, pcall(get, {prserve_mtime = true}))") == ["unknown option 'prserve_mtime' to 'get' (did you mean 'preserve_mtime'?)"])
        #expect(try s.eval("return select(2, pcall(get, {preserve_mtime = 1}))") == ["bad option 'preserve_mtime' to 'get' (boolean expected, got number)"])
    }

    /// Lua -> Swift -> Lua -> Swift ... with errors raised at every depth, thousands of times:
    /// no crash, the raised value passes through unchanged, and nothing leaks.
    @Test func nestedCallbackErrorsThousandsOfTimes() throws {
        let s = LuaState()
        let l = s.lua
        // call(f, ...): Swift calls the Lua function f protected and propagates its error.
        l.push(function: "call") { l in
            let f = try l.checkFunction(1)
            let n = l.top
            try l.call(f, nresults: 1) {
                for i in 2..<(n + 1) { l.pushValue(i) }
                return n - 1
            }
            return 1
        }
        l.setGlobal("call")
        l.push(function: "fail") { l in throw LuaError.message("swift says no: \(l.string(1) ?? "")") }
        l.setGlobal("fail")
        let before = Counted.live
        let code = """
        local errobj = setmetatable({}, {__tostring = function() return "custom" end})
        local function depth(n)
          if n == 0 then error(errobj) end
          return call(depth, n - 1)
        end
        local same, swift = 0, 0
        for i = 1, 3000 do
          local ok, e = pcall(depth, i % 7)
          if not ok and e == errobj then same = same + 1 end
          local ok2, e2 = pcall(call, function() return call(fail, "x" .. i) end)
          if not ok2 and e2 == "swift says no: x" .. i then swift = swift + 1 end
        end
        collectgarbage(); collectgarbage()
        return same, swift, collectgarbage("count")
        """
        let r = try s.eval(code)
        #expect(r[0] == "3000")
        #expect(r[1] == "3000")
        // Lua's heap stays small (no per-call leak of boxes or references).
        let r2 = try s.eval(code)
        #expect(Double(r2[2])! < Double(r[2])! + 64)
        #expect(Counted.live == before)
        #expect(try s.eval("local n = 0; for k in pairs(debug.getregistry()) do n = n + 1 end; return n") == s.eval("local n = 0; for k in pairs(debug.getregistry()) do n = n + 1 end; return n"))
    }

    @Test func boundObjectsAreReleasedByGcAndClosedByClose() throws {
        let cls = LuaClass<Counted>(name: "test.Counted")
        cls.method("close") { o, _ in o.closed += 1; return 0 }
        cls.meta("__close") { o, _ in o.closed += 1; return 0 }
        cls.getter("closed") { o, l in l.push(o.closed) }
        cls.method("twice") { _, l in l.push(try l.checkInteger(2) * 2); return 1 }
        let before = Counted.live
        do {
            let s = LuaState()
            let l = s.lua
            cls.register(in: l)
            l.push(function: "new") { l in cls.push(Counted(), in: l); return 1 }
            l.setGlobal("new")
            #expect(try s.eval("do local o <close> = new(); kept = o end; return kept.closed") == ["1"])
            #expect(try s.eval("return kept:twice(21)") == ["42"])
            // As luaL_argerror, from lua_getinfo: a method call does not count self, any other
            // call does; the name is the one the function was called by.
            #expect(try s.eval("return select(2, pcall(function() return kept:twice('x') end))")
                    == ["bad argument #1 to 'twice' (number expected, got string)"])
            #expect(try s.eval("return select(2, pcall(kept.twice, kept, 'x'))") == ["bad argument #2 to 'twice' (number expected, got string)"])
            #expect(try s.eval("local dbl = kept.twice; return select(2, pcall(function() return dbl(kept, 'x') end))")
                    == ["bad argument #2 to 'dbl' (number expected, got string)"])
            #expect(try s.eval("return select(2, pcall(kept.twice, 1, 2))")
                    == ["bad argument #1 to 'twice' (test.Counted expected, got number; call methods with ':')"])
            #expect(try s.eval("return select(2, pcall(kept.twice))")
                    == ["bad argument #1 to 'twice' (test.Counted expected, got no value; call methods with ':')"])
            #expect(try s.eval("local t = setmetatable({}, {__index = {twice = kept.twice}}); return select(2, pcall(function() return t:twice(1) end))")
                    == ["calling 'twice' on bad self (test.Counted expected, got table)"])
            // __index is the methods table first: a method is the same function every time.
            #expect(try s.eval("local o = new(); local same = rawequal(kept.twice, o.twice); o = nil; collectgarbage(); collectgarbage(); return same") == ["true"])
            #expect(Counted.live == before + 1)
            _ = try s.eval("kept = nil; for i = 1, 100 do new() end; collectgarbage(); collectgarbage()")
            #expect(Counted.live == before)
            _ = try s.eval("kept = new()")
        }
        // lua_close ran every __gc.
        #expect(Counted.live == before)
    }

    @Test func editDistanceSuggestions() {
        #expect(closest(to: "prot", in: ["port", "host"]) == "port")
        #expect(closest(to: "zzzzzzzz", in: ["port", "host"]) == nil)
    }
}
