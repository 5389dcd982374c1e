#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A hybrid logical clock: 64-bit timestamps that follow the wall clock yet
/// strictly increase on every call, even when the wall clock stalls or steps back.
///
/// Layout: the high 48 bits hold milliseconds since the Unix epoch (enough
/// until the year 10889), the low 16 bits a logical counter. A timestamp
/// therefore compares like its wall-clock time, and ties within a millisecond
/// (or while the wall clock lags behind the clock) are ordered by the counter;
/// when the counter overflows it carries into the millisecond field, so the
/// clock runs at most slightly ahead of real time. ``observe(remote:)`` moves
/// the clock past a timestamp seen from another node, which keeps causally
/// later writes ordered after what they saw.
///
/// A clock is used from one thread (the node's reactor); it is not `Sendable`.
public final class HybridLogicalClock {
    /// Bits of the logical counter, the low part of a timestamp.
    public static let counterBits = 16

    /// The largest physical time a timestamp can carry, in milliseconds since the epoch.
    public static let maximumMilliseconds: UInt64 = (1 << (64 - UInt64(counterBits))) - 1

    /// The source of physical time, in milliseconds since the Unix epoch.
    private let wallClock: () -> UInt64

    /// How far ahead of the local wall clock a remote timestamp may be and still be observed.
    private let maximumForwardDrift: UInt64?

    /// The last timestamp handed out or observed; the next one is greater.
    public private(set) var latest: UInt64

    /// A clock reading `wallClock` (milliseconds since the Unix epoch; the system clock by default).
    ///
    /// - Parameters:
    ///   - wallClock: The physical time source; tests inject one that can go backwards.
    ///   - maximumForwardDrift: When set, ``observe(remote:)`` ignores remote timestamps more
    ///     than this many milliseconds ahead of the wall clock, so one node with a runaway
    ///     clock cannot drag every clock forward. `nil` accepts any timestamp.
    ///   - startingAfter: A timestamp every future reading must exceed, such as the newest
    ///     timestamp this node wrote before a restart.
    public init(
        wallClock: @escaping () -> UInt64 = HybridLogicalClock.systemMilliseconds,
        maximumForwardDrift: UInt64? = nil,
        startingAfter: UInt64 = 0
    ) {
        self.wallClock = wallClock
        self.maximumForwardDrift = maximumForwardDrift
        self.latest = startingAfter
    }

    /// A new timestamp, greater than every timestamp this clock has returned or observed.
    ///
    /// It is the current wall-clock millisecond with a zero counter when that is
    /// ahead of the clock, and the latest timestamp plus one otherwise.
    public func now() -> UInt64 {
        let physical = Self.timestamp(milliseconds: wallClock(), counter: 0)
        if physical > latest {
            latest = physical
        } else if latest < .max {
            latest += 1
        }
        return latest
    }

    /// Moves the clock past `remote`, a timestamp received from another node, so that the
    /// next ``now()`` is greater than it.
    ///
    /// Returns `false`, leaving the clock alone, when `remote` is further ahead of the wall
    /// clock than the `maximumForwardDrift` given at creation.
    @discardableResult
    public func observe(remote: UInt64) -> Bool {
        if let maximumForwardDrift {
            let limit = min(wallClock(), Self.maximumMilliseconds).addingReportingOverflow(maximumForwardDrift)
            if !limit.overflow && Self.milliseconds(of: remote) > limit.partialValue {
                return false
            }
        }
        latest = max(latest, remote)
        return true
    }

    // MARK: Layout

    /// The timestamp of physical time `milliseconds` (clamped to 48 bits) and logical `counter`.
    public static func timestamp(milliseconds: UInt64, counter: UInt16) -> UInt64 {
        min(milliseconds, maximumMilliseconds) << UInt64(counterBits) | UInt64(counter)
    }

    /// The physical part of a timestamp: milliseconds since the Unix epoch.
    public static func milliseconds(of timestamp: UInt64) -> UInt64 {
        timestamp >> UInt64(counterBits)
    }

    /// The logical part of a timestamp: its counter within its millisecond.
    public static func counter(of timestamp: UInt64) -> UInt16 {
        UInt16(truncatingIfNeeded: timestamp)
    }

    /// The system's real-time clock in milliseconds since the Unix epoch.
    public static func systemMilliseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        guard time.tv_sec >= 0 else { return 0 }
        return UInt64(time.tv_sec) * 1000 + UInt64(time.tv_nsec / 1_000_000)
    }
}
