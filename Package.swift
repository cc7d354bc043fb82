// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "sftplua",
    products: [
        .executable(name: "sftplua", targets: ["sftplua"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // C side: Lua headers + trampolines (lua_error only ever runs here).
        .target(name: "CLua", linkerSettings: [.linkedLibrary("lua5.4")]),
        // C side: libssh2 headers + the few macros and OpenSSL calls Swift cannot reach.
        .target(name: "CLibssh2", linkerSettings: [.linkedLibrary("ssh2"), .linkedLibrary("crypto")]),
        .target(name: "SFTPCore", dependencies: ["CLibssh2"]),
        .target(name: "LuaHost", dependencies: ["CLua"]),
        .target(name: "SFTPLua", dependencies: ["SFTPCore", "LuaHost", "CLua"]),
        .executableTarget(name: "sftplua", dependencies: [
            "SFTPLua", "LuaHost",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "LuaHostTests", dependencies: ["LuaHost", "CLua"]),
        .testTarget(name: "SFTPCoreTests", dependencies: ["SFTPCore"]),
        .testTarget(name: "SFTPLuaTests", dependencies: ["SFTPLua", "LuaHost"]),
        .testTarget(name: "EndToEndTests", dependencies: []),
    ],
    swiftLanguageModes: [.v5]
)
