import Foundation
import PackagePlugin

/// Embeds the Lua library (lua/*.lua) and the reference (docs/reference.md, the REPL's help())
/// into the target at build time: one generated Swift file in the plugin's work directory,
/// never in the checkout. Editing any of them rebuilds it.
@main
struct EmbedLua: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let luaDir = root.appendingPathComponent("lua")
        let names = try FileManager.default.contentsOfDirectory(atPath: luaDir.path).filter { $0.hasSuffix(".lua") }.sorted()
        let lua = names.map { luaDir.appendingPathComponent($0) }
        let reference = root.appendingPathComponent("docs/reference.md")
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("Prelude.swift")
        return [.buildCommand(displayName: "Embedding lua/ and docs/reference.md",
                              executable: try context.tool(named: "EmbedLuaTool").url,
                              arguments: [output.path, reference.path] + lua.map(\.path),
                              inputFiles: lua + [reference],
                              outputFiles: [output])]
    }
}
