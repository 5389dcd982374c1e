import Basics

/// A fake clock for the control plane's state machines: time only moves when
/// the test says so. The wall clock starts at a fixed moment (November 2023)
/// and moves with the monotonic one.
public struct ManualClock: Sendable {
    public var monotonic: Duration = .zero
    public let wallOrigin: Int64 = 1_700_000_000_000_000

    public init() {}

    public var now: ServiceTime { ServiceTime(monotonic: monotonic, wallMicros: wallOrigin + monotonic.wholeMicroseconds) }

    public mutating func advance(_ duration: Duration) { monotonic += duration }
}
