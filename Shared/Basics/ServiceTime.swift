import Foundation

/// A moment as the control plane's pure state machines (membership, the
/// lock table) see it: a monotonic reading for timeouts and the wall clock
/// for what they report. Passed in, never read inside them, so tests drive
/// them with a fake clock.
public struct ServiceTime: Sendable, Equatable {
    /// Monotonic time since an arbitrary origin (the process start).
    public var monotonic: Duration
    /// Microseconds since the Unix epoch.
    public var wallMicros: Int64

    public init(monotonic: Duration, wallMicros: Int64) {
        self.monotonic = monotonic
        self.wallMicros = wallMicros
    }

    /// The wall-clock time `duration` after this one.
    public func wall(after duration: Duration) -> Int64 {
        wallMicros &+ duration.wholeMicroseconds
    }
}

/// The wall clock, in the unit of the wire's timestamps.
public enum WallClock {
    /// Microseconds since the Unix epoch, now.
    public static var micros: Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}
