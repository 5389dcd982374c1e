/// Paces work to a byte rate: each charge of `bytes` moves the earliest start
/// of the next piece of work back by bytes / rate, counted from the later of
/// now and where the previous charges left it. Pure: callers pass the time.
/// Anti-entropy paces its repaired rows with one, and every migration transfer
/// its batches (see ``TransferWindow``).
struct RatePacer {
    /// Bytes per second; 0: unlimited (charges add nothing, nothing waits).
    let bytesPerSecond: Int
    /// When the next piece of work may start.
    private(set) var notBefore: ContinuousClock.Instant
    /// Bytes charged, and the delay they added, since the pacer was made.
    private(set) var chargedBytes = 0
    private(set) var chargedDelay = Duration.zero
    /// How often work was held back.
    private(set) var waits = 0

    init(bytesPerSecond: Int, now: ContinuousClock.Instant) {
        self.bytesPerSecond = max(0, bytesPerSecond)
        notBefore = now
    }

    /// How long work that wants to start at `now` must wait; `nil`: it may go.
    /// A wait is counted.
    mutating func wait(at now: ContinuousClock.Instant) -> Duration? {
        guard now < notBefore else { return nil }
        waits += 1
        return notBefore - now
    }

    /// Charges `bytes` of work done at `now`; returns the delay added.
    @discardableResult
    mutating func charge(_ bytes: Int, at now: ContinuousClock.Instant) -> Duration {
        guard bytesPerSecond > 0, bytes > 0 else { return .zero }
        let delay = Self.delay(bytes: bytes, bytesPerSecond: bytesPerSecond)
        notBefore = max(notBefore, now) + delay
        chargedBytes += bytes
        chargedDelay += delay
        return delay
    }

    /// Holds work back until `instant` in place of what the charges so far asked,
    /// whatever the rate (a retry after a failure: the work charged is done again).
    mutating func hold(until instant: ContinuousClock.Instant) {
        notBefore = instant
    }

    /// The time `bytes` take at `bytesPerSecond`, in whole nanoseconds.
    static func delay(bytes: Int, bytesPerSecond: Int) -> Duration {
        .nanoseconds(Int64(bytes) * 1_000_000_000 / Int64(bytesPerSecond))
    }
}
