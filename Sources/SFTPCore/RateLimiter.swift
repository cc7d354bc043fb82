import Foundation
import Synchronization

/// `bwlimit`: caps the file bytes per second a transfer moves, over all its connections
/// together. The SFTP layer counts the data of each READ and WRITE request as it queues it, and
/// sleeps before it writes them (`pace`) when it is ahead of the allowed rate; the data in flight
/// is kept to about a quarter second of the rate (`SFTP.hasRoom`), so the wire sees the rate. Set for the length of one call (`RateLimiter.active`).
/// `@unchecked Sendable`: see below.
public final class RateLimiter: @unchecked Sendable {
    // Safe to share between the threads of one transfer: every field is used under `lock`.
    private let lock = NSLock()
    public let bytesPerSecond: Double
    private var start = Date()
    private var bytes: Double = 0
    /// Ctrl-C was pressed during this call: what is left of it (aborting, draining) is not paced.
    private var stopped = false

    public init(bytesPerSecond: Double) { self.bytesPerSecond = max(1, bytesPerSecond) }

    /// File bytes the rate has let through so far (counted bytes wait their turn: a block is
    /// counted when it is sent, and the sender sleeps until the rate allows it).
    public var moved: UInt64 {
        lock.lock(); defer { lock.unlock() }
        return UInt64(min(bytes, max(0, Date().timeIntervalSince(start)) * bytesPerSecond))
    }

    /// Called on the Lua thread while a transfer waits for the rate (set by the bindings).
    // nonisolated(unsafe): installed once at start, before any transfer.
    nonisolated(unsafe) public static var waiting: (() -> Void)?

    private static let current = Locked<RateLimiter?>(nil)
    /// Whether one is in force, read without the lock: the SFTP layer asks for every READ and
    /// WRITE, and a transfer without bwlimit (the usual case) must not take a shared lock for it.
    private static let inForce = Atomic<Bool>(false)
    /// The limiter in force (nil: no limit).
    public static var active: RateLimiter? {
        get { inForce.load(ordering: .acquiring) ? current.value : nil }
        set {
            current.update { $0 = newValue }
            inForce.store(newValue != nil, ordering: .releasing)
        }
    }

    /// `n` bytes moved: sleeps until they fit the rate (in short slices, so Ctrl-C is seen).
    public func pace(_ n: Int) {
        lock.lock()
        if stopped { lock.unlock(); return }
        bytes += Double(n)
        let due = bytes / bytesPerSecond - Date().timeIntervalSince(start)
        lock.unlock()
        var left = due
        var rounds = 0
        while left > 0, rounds < 100_000 {
            if Interrupt.pending() { stop(); return }
            rounds += 1
            let slice = min(left, 0.2)
            Thread.sleep(forTimeInterval: slice)
            left -= slice
            // A slow transfer still shows time passing (progress block, --stats lines).
            if Interrupt.onLuaThread { RateLimiter.waiting?() }
        }
    }

    /// `n` counted bytes did not move after all (a READ answered short, or at end of file).
    public func refund(_ n: Int) {
        lock.lock(); bytes = max(0, bytes - Double(n)); lock.unlock()
    }

    /// No more sleeps for this limiter (Ctrl-C: `Interrupt.consume` calls it).
    public func stop() {
        lock.lock(); stopped = true; lock.unlock()
    }

    /// "10M", "512K", "1G", "2.5M", "300" or a number: bytes per second (K, M, G are powers of
    /// 1024, as rclone's --bwlimit). nil for anything else.
    public static func parse(_ s: String) -> Double? {
        let t = s.trimmingCharacters(in: .whitespaces)
        guard let last = t.last else { return nil }
        let mult: Double
        var num = t
        switch last.uppercased() {
        case "K": mult = 1024; num.removeLast()
        case "M": mult = 1024 * 1024; num.removeLast()
        case "G": mult = 1024 * 1024 * 1024; num.removeLast()
        default: mult = 1
        }
        // Up to 1 TiB/s: a larger number is a typo, not a rate.
        guard let v = Double(num), v.isFinite, v > 0, v * mult <= Double(1 << 40) else { return nil }
        return v * mult
    }
}
