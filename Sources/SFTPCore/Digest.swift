import CLibssh2
import Foundation

/// SHA-256 over a stream (OpenSSL), for checksum compares. One owner of the C context.
public final class SHA256Digest {
    private var ctx: UnsafeMutableRawPointer?

    public init() throws {
        guard let c = sl_sha256_new() else { throw SSHError(.io, "cannot start a SHA-256 digest") }
        ctx = c
    }
    deinit { if let c = ctx { sl_sha256_free(c) } }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        if let c = ctx, bytes.count > 0 { _ = sl_sha256_update(c, bytes.baseAddress, bytes.count) }
    }

    /// The digest as lowercase hex; the object cannot be used after.
    public func finish() -> String {
        guard let c = ctx else { return "" }
        ctx = nil
        var out = [UInt8](repeating: 0, count: 32)
        guard sl_sha256_final(c, &out) != 0 else { return "" }
        return out.map { String(format: "%02x", $0) }.joined()
    }

    /// SHA-256 of a local file, read in blocks.
    public static func file(_ path: String) throws -> String {
        let fd = LocalPath.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LocalError(errno, "cannot read", path: path) }
        defer { Foundation.close(fd) }
        let d = try SHA256Digest()
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = Foundation.read(fd, buf, 1 << 20)
            if n < 0 { if errno == EINTR { continue }; throw LocalError(errno, "cannot read", path: path) }
            if n == 0 { break }
            d.update(UnsafeRawBufferPointer(start: buf, count: n))
        }
        return d.finish()
    }

    /// SHA-256 of a remote file, streamed (the server is not asked to run anything).
    public static func remote(_ sftp: SFTP, _ path: String) throws -> String {
        let attrs = try sftp.stat(path)
        let file = try sftp.open(path, flags: .read)
        defer { try? file.close() }
        let d = try SHA256Digest()
        try Transfer.stream(file, size: attrs.size) { d.update($0) }
        return d.finish()
    }
}
