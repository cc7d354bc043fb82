// SFTP wire encoding (draft-ietf-secsh-filexfer-02, SSH data types of RFC 4251): big-endian
// integers and length-prefixed byte strings. Pure Swift: no libssh2, no Foundation, so the reply
// parser can be built alone into the fuzz target (scripts/fuzz).

/// A reply that breaks the protocol: a length or count past the packet, an unknown type, a reply
/// to nothing. The connection that sent it is closed (ConnectionError).
public struct ProtocolViolation: Error, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Builds one packet's bytes.
public struct WireWriter {
    /// The bytes written so far (the SFTP client swaps its output buffer in and out: no copies).
    public var bytes: [UInt8] = []

    public init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u32(_ v: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 24)); bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8)); bytes.append(UInt8(truncatingIfNeeded: v))
    }
    public mutating func u64(_ v: UInt64) { u32(UInt32(truncatingIfNeeded: v >> 32)); u32(UInt32(truncatingIfNeeded: v)) }
    /// A length-prefixed byte string (names are bytes: never transcoded).
    public mutating func string<C: Collection>(_ s: C) where C.Element == UInt8 {
        u32(UInt32(s.count)); bytes.append(contentsOf: s)
    }
    public mutating func raw(_ b: UnsafeRawBufferPointer) { bytes.append(contentsOf: b) }
    /// Overwrites the uint32 at `index` (a packet's length, once its body is written).
    public mutating func patchU32(at index: Int, _ v: UInt32) {
        bytes[index] = UInt8(truncatingIfNeeded: v >> 24); bytes[index + 1] = UInt8(truncatingIfNeeded: v >> 16)
        bytes[index + 2] = UInt8(truncatingIfNeeded: v >> 8); bytes[index + 3] = UInt8(truncatingIfNeeded: v)
    }
}

/// Reads one packet's bytes; every read is checked against what is left.
public struct WireReader {
    public let bytes: ArraySlice<UInt8>
    public private(set) var position: Int

    public init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes; position = bytes.startIndex }
    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    public var remaining: Int { bytes.endIndex - position }
    public var atEnd: Bool { position >= bytes.endIndex }

    public mutating func u8() throws -> UInt8 {
        guard remaining >= 1 else { throw ProtocolViolation("packet ends inside a byte field") }
        defer { position += 1 }
        return bytes[position]
    }
    public mutating func u32() throws -> UInt32 {
        guard remaining >= 4 else { throw ProtocolViolation("packet ends inside a uint32 field") }
        let p = position
        position += 4
        return UInt32(bytes[p]) << 24 | UInt32(bytes[p + 1]) << 16 | UInt32(bytes[p + 2]) << 8 | UInt32(bytes[p + 3])
    }
    public mutating func u64() throws -> UInt64 {
        let hi = try u32(), lo = try u32()
        return UInt64(hi) << 32 | UInt64(lo)
    }
    /// A length-prefixed string of at most `limit` bytes, as a slice of the packet.
    public mutating func stringSlice(limit: Int = Int.max) throws -> ArraySlice<UInt8> {
        let n = Int(try u32())
        guard n <= remaining else { throw ProtocolViolation("string of \(n) bytes in a packet with \(remaining) left") }
        guard n <= limit else { throw ProtocolViolation("string of \(n) bytes, more than the \(limit) allowed here") }
        defer { position += n }
        return bytes[position..<position + n]
    }
    public mutating func string(limit: Int = Int.max) throws -> [UInt8] { Array(try stringSlice(limit: limit)) }
    public mutating func rest() -> ArraySlice<UInt8> {
        defer { position = bytes.endIndex }
        return bytes[position...]
    }
}

/// Text for messages only (server messages, extension names): invalid UTF-8 shows as U+FFFD.
/// Never used for a path or a name.
@inline(__always) func displayText<C: Collection>(_ b: C) -> String where C.Element == UInt8 {
    String(decoding: b, as: UTF8.self)
}
