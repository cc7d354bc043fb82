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
        let reference = root.appendingPathComponent("docs/reference.md")
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("Prelude.swift")
        // Inputs: each file (an edit) and the directory (a file added); the tool lists the
        // directory when it runs. SwiftPM keeps this list until the manifest changes: after
        // removing or renaming a file in lua/, `touch Package.swift`.
        return [.buildCommand(displayName: "Embedding lua/ and docs/reference.md",
                              executable: try context.tool(named: "EmbedLuaTool").url,
                              arguments: [output.path, reference.path, luaDir.path],
                              inputFiles: [luaDir, reference] + names.map { luaDir.appendingPathComponent($0) },
                              outputFiles: [output])]
    }
}
