import Basics
import Logging
import StorageEngine

/// The node's hybrid logical clock with its one door for timestamps from
/// elsewhere: a remote timestamp (a peer's record, a client's session context)
/// moves the clock only when it is at most ``maximumDrift`` ahead of this
/// node's wall clock. One further ahead is refused and logged, so a single
/// request with a far-future timestamp can neither drag every clock forward
/// nor store a version that later writes cannot beat ("pinning" its key).
///
/// Used on the node's reactor thread only.
final class NodeClock {
    let clock: HybridLogicalClock
    let maximumDrift: Duration
    private var logger: Logger
    private var refusalLog = RateLimitedLog(interval: .seconds(1))

    init(maximumDrift: Duration, logger: Logger, wallClock: @escaping () -> UInt64 = HybridLogicalClock.systemMilliseconds) {
        self.maximumDrift = maximumDrift
        self.logger = logger
        clock = HybridLogicalClock(wallClock: wallClock, maximumForwardDrift: UInt64(max(0, maximumDrift.wholeMilliseconds)))
    }

    /// A new timestamp for a write this node coordinates.
    func now() -> UInt64 { clock.now() }

    /// Moves the clock past `timestamp` from `source` (a peer or client, for the
    /// log) and returns `true`; returns `false`, logging, when it is too far ahead.
    func admit(_ timestamp: UInt64, from source: @autoclosure () -> String) -> Bool {
        if clock.observe(remote: timestamp) { return true }
        if let suppressed = refusalLog.shouldLog() {
            let ahead = HybridLogicalClock.milliseconds(of: timestamp) &- HybridLogicalClock.systemMilliseconds()
            logger.warning("node.clock.refused", metadata: [
                "clock.source": "\(source())", "clock.ahead_ms": "\(Int64(bitPattern: ahead))",
                "clock.max_drift_ms": "\(maximumDrift.wholeMilliseconds)", "log.suppressed": "\(suppressed)",
            ])
        }
        return false
    }

    /// The first of `records` whose version is too far ahead (after admitting
    /// all the ones before it), or `nil` when every one was admitted.
    func firstRefused(_ records: [VersionedRecord], from source: @autoclosure () -> String) -> VersionedRecord? {
        records.first { !admit($0.version.timestamp, from: source()) }
    }

    /// The records whose versions are admitted; the others are dropped (and logged).
    func admitted(_ records: [VersionedRecord], from source: @autoclosure () -> String) -> [VersionedRecord] {
        records.filter { admit($0.version.timestamp, from: source()) }
    }

    /// A refusal message for a record that is too far ahead.
    func refusal(_ timestamp: UInt64) -> String {
        let ahead = Int64(bitPattern: HybridLogicalClock.milliseconds(of: timestamp) &- HybridLogicalClock.systemMilliseconds())
        return "timestamp \(timestamp) is \(ahead) ms ahead of this node's clock; at most \(maximumDrift.wholeMilliseconds) ms is allowed"
    }
}

/// Lets a repeated log line through at most once per `interval` and counts the ones held back.
struct RateLimitedLog {
    let interval: Duration
    private var last: ContinuousClock.Instant?
    private var suppressed = 0

    init(interval: Duration) { self.interval = interval }

    /// The number of lines suppressed since the last one logged, when this one should be logged; `nil` otherwise.
    mutating func shouldLog(now: ContinuousClock.Instant = .now) -> Int? {
        if let last, now - last < interval {
            suppressed += 1
            return nil
        }
        last = now
        defer { suppressed = 0 }
        return suppressed
    }
}
