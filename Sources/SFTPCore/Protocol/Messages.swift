// SFTP version 3 messages (draft-ietf-secsh-filexfer-02) and OpenSSH's extensions (PROTOCOL,
// section 4): packet types, open flags, status codes, attributes, and the parser of every reply.
// Pure Swift (see Wire.swift): the fuzz target builds this file alone.

/// Packet types.
public enum FXP {
    public static let INIT: UInt8 = 1, VERSION: UInt8 = 2, OPEN: UInt8 = 3, CLOSE: UInt8 = 4, READ: UInt8 = 5
    public static let WRITE: UInt8 = 6, LSTAT: UInt8 = 7, FSTAT: UInt8 = 8, SETSTAT: UInt8 = 9, FSETSTAT: UInt8 = 10
    public static let OPENDIR: UInt8 = 11, READDIR: UInt8 = 12, REMOVE: UInt8 = 13, MKDIR: UInt8 = 14, RMDIR: UInt8 = 15
    public static let REALPATH: UInt8 = 16, STAT: UInt8 = 17, RENAME: UInt8 = 18, READLINK: UInt8 = 19, SYMLINK: UInt8 = 20
    public static let STATUS: UInt8 = 101, HANDLE: UInt8 = 102, DATA: UInt8 = 103, NAME: UInt8 = 104, ATTRS: UInt8 = 105
    public static let EXTENDED: UInt8 = 200, EXTENDED_REPLY: UInt8 = 201
}

/// SSH_FXF_* open flags.
public struct OpenFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let read = OpenFlags(rawValue: 0x01)
    public static let write = OpenFlags(rawValue: 0x02)
    public static let append = OpenFlags(rawValue: 0x04)
    public static let create = OpenFlags(rawValue: 0x08)
    public static let truncate = OpenFlags(rawValue: 0x10)
    public static let exclusive = OpenFlags(rawValue: 0x20)
}

/// SSH_FX_* status codes (0-8 in version 3; the rest are later drafts' that servers send too).
public enum FX {
    public static let OK: UInt32 = 0, EOF: UInt32 = 1, NO_SUCH_FILE: UInt32 = 2, PERMISSION_DENIED: UInt32 = 3
    public static let FAILURE: UInt32 = 4, BAD_MESSAGE: UInt32 = 5, NO_CONNECTION: UInt32 = 6, CONNECTION_LOST: UInt32 = 7
    public static let OP_UNSUPPORTED: UInt32 = 8, INVALID_HANDLE: UInt32 = 9, NO_SUCH_PATH: UInt32 = 10
    public static let FILE_ALREADY_EXISTS: UInt32 = 11, WRITE_PROTECT: UInt32 = 12, NO_MEDIA: UInt32 = 13
    public static let NO_SPACE_ON_FILESYSTEM: UInt32 = 14, QUOTA_EXCEEDED: UInt32 = 15, UNKNOWN_PRINCIPAL: UInt32 = 16
    public static let LOCK_CONFLICT: UInt32 = 17, DIR_NOT_EMPTY: UInt32 = 18, NOT_A_DIRECTORY: UInt32 = 19
    public static let INVALID_FILENAME: UInt32 = 20, LINK_LOOP: UInt32 = 21

    public static func text(_ status: UInt32) -> String {
        switch status {
        case EOF: return "end of file"
        case NO_SUCH_FILE: return "no such file"
        case PERMISSION_DENIED: return "permission denied"
        case FAILURE: return "failure"
        case BAD_MESSAGE: return "bad message"
        case NO_CONNECTION: return "no connection"
        case CONNECTION_LOST: return "connection lost"
        case OP_UNSUPPORTED: return "operation unsupported"
        case INVALID_HANDLE: return "invalid handle"
        case NO_SUCH_PATH: return "no such path"
        case FILE_ALREADY_EXISTS: return "file already exists"
        case WRITE_PROTECT: return "write protected"
        case NO_MEDIA: return "no media"
        case NO_SPACE_ON_FILESYSTEM: return "no space on filesystem"
        case QUOTA_EXCEEDED: return "quota exceeded"
        case DIR_NOT_EMPTY: return "directory not empty"
        case NOT_A_DIRECTORY: return "not a directory"
        case INVALID_FILENAME: return "invalid filename"
        case LINK_LOOP: return "link loop"
        default: return "status \(status)"
        }
    }
}

/// One extended attribute (type and data are the server's bytes).
public struct ExtendedAttribute: Equatable, Sendable {
    public var type: [UInt8]
    public var data: [UInt8]
}

/// File attributes as the server reports them.
public struct FileAttributes: Equatable, Sendable {
    public var size: UInt64?
    public var uid: UInt32?
    public var gid: UInt32?
    /// Full st_mode (type bits + permissions).
    public var mode: UInt32?
    public var atime: UInt64?
    public var mtime: UInt64?
    public var extended: [ExtendedAttribute] = []
    /// Client-side, never on the wire: an upload wrote the file in place (no temp name).
    public var inplace = false

    public init(size: UInt64? = nil, uid: UInt32? = nil, gid: UInt32? = nil, mode: UInt32? = nil, atime: UInt64? = nil, mtime: UInt64? = nil) {
        self.size = size; self.uid = uid; self.gid = gid; self.mode = mode; self.atime = atime; self.mtime = mtime
    }

    static let SIZE: UInt32 = 0x1, UIDGID: UInt32 = 0x2, PERMISSIONS: UInt32 = 0x4, ACMODTIME: UInt32 = 0x8
    static let EXTENDED: UInt32 = 0x8000_0000
    /// At most this many extended attributes are kept from one reply (a hostile count cannot
    /// make us allocate: each is also bounded by the packet's bytes).
    static let maxExtended = 64

    public init(from r: inout WireReader) throws {
        let flags = try r.u32()
        if flags & Self.SIZE != 0 { size = try r.u64() }
        if flags & Self.UIDGID != 0 { uid = try r.u32(); gid = try r.u32() }
        if flags & Self.PERMISSIONS != 0 { mode = try r.u32() }
        if flags & Self.ACMODTIME != 0 { atime = UInt64(try r.u32()); mtime = UInt64(try r.u32()) }
        if flags & Self.EXTENDED != 0 {
            let n = Int(try r.u32())
            // Each needs at least 8 bytes: a count past the packet is a violation, not an allocation.
            guard n <= r.remaining / 8 else { throw ProtocolViolation("\(n) extended attributes in \(r.remaining) bytes") }
            for i in 0..<n {
                let t = try r.stringSlice(), d = try r.stringSlice()
                if i < Self.maxExtended { extended.append(ExtendedAttribute(type: Array(t), data: Array(d))) }
            }
        }
    }

    public func encode(_ w: inout WireWriter) {
        var flags: UInt32 = 0
        if size != nil { flags |= Self.SIZE }
        if uid != nil || gid != nil { flags |= Self.UIDGID }
        if mode != nil { flags |= Self.PERMISSIONS }
        if mtime != nil || atime != nil { flags |= Self.ACMODTIME }
        w.u32(flags)
        if let size { w.u64(size) }
        if flags & Self.UIDGID != 0 { w.u32(uid ?? 0xFFFF_FFFF); w.u32(gid ?? 0xFFFF_FFFF) }
        if let mode { w.u32(mode) }
        if flags & Self.ACMODTIME != 0 {
            let m = mtime ?? atime ?? 0
            w.u32(UInt32(truncatingIfNeeded: atime ?? m)); w.u32(UInt32(truncatingIfNeeded: m))
        }
    }

    public enum Kind: String, Sendable { case file, dir, link, other }
    public var kind: Kind {
        guard let m = mode else { return .other }
        switch m & 0o170000 {
        case 0o100000: return .file
        case 0o040000: return .dir
        case 0o120000: return .link
        default: return .other
        }
    }
    public var isDir: Bool { kind == .dir }
}

/// One entry of a NAME reply: the name's exact bytes, ls -l text, attributes.
public struct NameEntry: Equatable, Sendable {
    public var name: [UInt8]
    public var longname: [UInt8]
    public var attributes: FileAttributes
    public init(name: [UInt8], longname: [UInt8], attributes: FileAttributes) {
        self.name = name; self.longname = longname; self.attributes = attributes
    }
}

/// A reply, matched to its request by id.
public enum Reply: Equatable {
    case status(code: UInt32, message: String)
    case handle([UInt8])
    case data(ArraySlice<UInt8>)
    case name([NameEntry])
    case attrs(FileAttributes)
    case extended(ArraySlice<UInt8>)
}

public enum SFTPMessages {
    /// The largest packet accepted from a server: a DATA reply of the largest read we ask for
    /// plus headers. Anything longer is a protocol violation, never an allocation.
    public static let maxPacket = 1 << 20
    /// Handles are at most 256 bytes (draft-02, section 6.2).
    public static let maxHandle = 256
    /// A name, longname or message beyond this is a violation (paths are a few KiB at most).
    public static let maxString = 64 << 10

    /// Parses one packet's payload (after its length): the id and the reply.
    public static func parseReply(_ payload: ArraySlice<UInt8>) throws -> (id: UInt32, reply: Reply) {
        var r = WireReader(payload)
        let type = try r.u8()
        let id = try r.u32()
        let reply: Reply
        switch type {
        case FXP.STATUS:
            let code = try r.u32()
            // Version 3 servers may omit the message and language tag.
            let message = r.atEnd ? "" : displayText(try r.stringSlice(limit: maxString))
            if !r.atEnd { _ = try r.stringSlice(limit: maxString) }
            reply = .status(code: code, message: message)
        case FXP.HANDLE:
            let h = try r.string(limit: maxHandle)
            reply = .handle(h)
        case FXP.DATA:
            reply = .data(try r.stringSlice())
        case FXP.NAME:
            let n = Int(try r.u32())
            // An entry takes at least 12 bytes (two empty strings and empty attributes).
            guard n <= r.remaining / 12 else { throw ProtocolViolation("NAME reply with \(n) entries in \(r.remaining) bytes") }
            var entries: [NameEntry] = []
            entries.reserveCapacity(n)
            for _ in 0..<n {
                let name = try r.string(limit: maxString)
                let long = try r.string(limit: maxString)
                entries.append(NameEntry(name: name, longname: long, attributes: try FileAttributes(from: &r)))
            }
            reply = .name(entries)
        case FXP.ATTRS:
            reply = .attrs(try FileAttributes(from: &r))
        case FXP.EXTENDED_REPLY:
            reply = .extended(r.rest())
        default:
            throw ProtocolViolation("unknown reply type \(type)")
        }
        return (id, reply)
    }

    /// The server's VERSION packet (payload after the length): its version and extensions.
    public static func parseVersion(_ payload: ArraySlice<UInt8>) throws -> (version: UInt32, extensions: [(name: String, data: [UInt8])]) {
        var r = WireReader(payload)
        guard try r.u8() == FXP.VERSION else { throw ProtocolViolation("the server's first packet is not VERSION") }
        let version = try r.u32()
        var ext: [(String, [UInt8])] = []
        var count = 0
        while !r.atEnd {
            count += 1
            guard count <= 256 else { throw ProtocolViolation("more than 256 extensions announced") }
            let name = try r.stringSlice(limit: 256)
            let data = try r.string(limit: maxString)
            ext.append((displayText(name), data))
        }
        return (version, ext)
    }

    /// `limits@openssh.com` reply: max packet, read, write lengths and open handles (0 = none).
    public static func parseLimits(_ b: ArraySlice<UInt8>) throws -> (packet: UInt64, read: UInt64, write: UInt64, handles: UInt64) {
        var r = WireReader(b)
        return (try r.u64(), try r.u64(), try r.u64(), try r.u64())
    }

    /// `statvfs@openssh.com` reply, in the order of the PROTOCOL file.
    public static func parseStatvfs(_ b: ArraySlice<UInt8>) throws -> [(String, UInt64)] {
        var r = WireReader(b)
        var out: [(String, UInt64)] = []
        for k in ["f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail", "f_fsid", "f_flag", "f_namemax"] {
            out.append((k, try r.u64()))
        }
        return out
    }

    /// Parses a stream of packets (length-prefixed) as a client would: used by the fuzz target.
    /// Returns how many replies parsed; throws at the first violation.
    public static func parseStream(_ bytes: [UInt8]) throws -> Int {
        var pos = 0, n = 0
        while bytes.count - pos >= 4 {
            let len = Int(bytes[pos]) << 24 | Int(bytes[pos + 1]) << 16 | Int(bytes[pos + 2]) << 8 | Int(bytes[pos + 3])
            guard len >= 1, len <= maxPacket else { throw ProtocolViolation("packet length \(len)") }
            guard bytes.count - pos - 4 >= len else { break }
            let payload = bytes[(pos + 4)..<(pos + 4 + len)]
            if n == 0, payload.first == FXP.VERSION { _ = try parseVersion(payload) } else {
                let (_, reply) = try parseReply(payload)
                if case .extended(let b) = reply { _ = try? parseLimits(b); _ = try? parseStatvfs(b) }
            }
            n += 1
            pos += 4 + len
        }
        return n
    }
}
