// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "sftplua",
    products: [
        .executable(name: "sftplua", targets: ["sftplua"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // C side: Lua headers + trampolines (lua_error only ever runs here).
        .target(name: "CLua", linkerSettings: [.linkedLibrary("lua5.4")]),
        // C side: libssh2 headers + the few macros and OpenSSL calls Swift cannot reach.
        .target(name: "CLibssh2", linkerSettings: [.linkedLibrary("ssh2"), .linkedLibrary("crypto")]),
        // C side: libedit's readline interface for the REPL (history, completion).
        .target(name: "CLineEdit", linkerSettings: [.linkedLibrary("edit")]),
        // Names are bytes: the lossless String <-> bytes mapping every layer uses for names.
        .target(name: "ByteString"),
        .target(name: "SFTPCore", dependencies: ["CLibssh2", "ByteString", .product(name: "SystemPackage", package: "swift-system")]),
        .target(name: "LuaHost", dependencies: ["CLua", "ByteString"]),
        // lua/*.lua and docs/reference.md, embedded at build time (never generated into git).
        .executableTarget(name: "EmbedLuaTool"),
        .plugin(name: "EmbedLua", capability: .buildTool(), dependencies: ["EmbedLuaTool"]),
        // The bindings: over SFTPCore and LuaHost only (no C API of either below them).
        .target(name: "SFTPLua", dependencies: ["SFTPCore", "LuaHost", "ByteString"], plugins: ["EmbedLua"]),
        .executableTarget(name: "sftplua", dependencies: [
            "SFTPLua", "LuaHost", "CLineEdit", "ByteString",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Starts the throwaway sshd (scripts/test-sshd) for the tests; runs the built binary.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "LuaHostTests", dependencies: ["LuaHost", "CLua", "ByteString"]),
        .testTarget(name: "SFTPCoreTests", dependencies: ["SFTPCore", "ByteString", "TestSupport"]),
        .testTarget(name: "SFTPLuaTests", dependencies: ["SFTPLua", "LuaHost", "TestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["sftplua", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
