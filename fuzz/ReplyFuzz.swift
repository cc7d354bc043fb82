// libFuzzer target for the SFTP reply parser (scripts/fuzz builds it with -sanitize=fuzzer and
// runs it from fuzz/corpus/reply). Whatever the bytes, parsing must end in a value or a
// ProtocolViolation: never a crash, a trap, an out-of-bounds read or an unbounded allocation.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzReply(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    // As a stream of length-prefixed packets (VERSION first), as the client reads them.
    _ = try? SFTPMessages.parseStream(bytes)
    guard size > 0 else { return 0 }
    // As one packet's payload, each way a reply can be read.
    _ = try? SFTPMessages.parseReply(bytes[...])
    _ = try? SFTPMessages.parseVersion(bytes[...])
    _ = try? SFTPMessages.parseLimits(bytes[...])
    _ = try? SFTPMessages.parseStatvfs(bytes[...])
    // Attributes read back after being written must be the same attributes.
    var r = WireReader(bytes)
    if let a = try? FileAttributes(from: &r) {
        var w = WireWriter()
        var plain = a
        plain.extended = []
        plain.encode(&w)
        var back = WireReader(w.bytes)
        let b = try? FileAttributes(from: &back)
        // Times travel as uint32 on the wire; atime without mtime is sent with mtime = atime.
        if plain.atime == nil || plain.mtime != nil, b != plain { fatalError("attributes changed in a round trip: \(plain) -> \(String(describing: b))") }
    }
    return 0
}
