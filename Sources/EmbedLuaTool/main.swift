import Foundation

// EmbedLuaTool OUTPUT REFERENCE LUA_DIR: writes a Swift file with the Lua library's chunks
// (every *.lua of LUA_DIR, by file name, sorted) and the reference text, as raw string
// literals. Run by the EmbedLua build-tool plugin; the output lives in the build directory only.
let args = CommandLine.arguments.dropFirst()
guard args.count == 3 else {
    FileHandle.standardError.write(Data("usage: EmbedLuaTool OUTPUT REFERENCE LUA_DIR\n".utf8))
    exit(2)
}
let output = args[args.startIndex], reference = args[args.startIndex + 1]
let luaDir = args[args.startIndex + 2]
let sources = ((try? FileManager.default.contentsOfDirectory(atPath: luaDir)) ?? []).filter { $0.hasSuffix(".lua") }.sorted()
    .map { luaDir + "/" + $0 }

/// A raw string literal of `text`: enough `#` that nothing inside ends it (`"` + #s) or
/// interpolates (`\` + #s).
func literal(_ text: String) -> String {
    var n = 1
    while text.contains("\"" + String(repeating: "#", count: n)) || text.contains("\\" + String(repeating: "#", count: n)) { n += 1 }
    let hashes = String(repeating: "#", count: n)
    return "\(hashes)\"\"\"\n\(text)\n\"\"\"\(hashes)"
}

func read(_ path: String) -> String {
    guard let data = FileManager.default.contents(atPath: path), let s = String(data: data, encoding: .utf8) else {
        FileHandle.standardError.write(Data("EmbedLuaTool: cannot read \(path)\n".utf8))
        exit(1)
    }
    return s.hasSuffix("\n") ? String(s.dropLast()) : s
}

var out = "// Generated at build time by the EmbedLua plugin from lua/*.lua and docs/reference.md.\n"
out += "enum Prelude {\n    static let chunks: [(String, String)] = [\n"
for path in sources {
    out += "        (\"\((path as NSString).lastPathComponent)\", \(literal(read(path)))),\n"
}
out += "    ]\n    /// docs/reference.md, for the REPL's help().\n"
out += "    static let reference = \(literal(read(reference)))\n}\n"
let old = FileManager.default.contents(atPath: output).flatMap { String(data: $0, encoding: .utf8) }
if old != out {
    do { try out.write(toFile: output, atomically: true, encoding: .utf8) } catch {
        FileHandle.standardError.write(Data("EmbedLuaTool: cannot write \(output): \(error)\n".utf8))
        exit(1)
    }
}
