import Basics
import Histogram

/// The latencies of one benchmark phase, recorded in an HdrHistogram: 1 µs to
/// 10 minutes at three significant digits, a fixed few tens of kilobytes
/// however many operations run, and mergeable across concurrent workers.
public struct Latencies: Sendable {
    public private(set) var histogram = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)

    public init() {}

    /// Operations recorded.
    public var count: Int { Int(histogram.totalCount) }

    /// Records one operation that took `duration` (rounded up to a whole microsecond).
    public mutating func record(_ duration: Duration) {
        let micros = max(1, duration.microsecondsRoundedUp)
        _ = histogram.record(UInt64(min(micros, Int64(histogram.highestTrackableValue))))
    }

    /// Adds another worker's latencies to these.
    public mutating func add(_ other: Latencies) { histogram.add(other.histogram) }

    /// The latency at `percentile` (0...100), in microseconds; 0 when nothing was recorded.
    public func micros(atPercentile percentile: Double) -> Int {
        count == 0 ? 0 : Int(histogram.valueAtPercentile(percentile))
    }

    /// The largest latency recorded, in microseconds.
    public var maxMicros: Int { count == 0 ? 0 : Int(histogram.max) }

    /// The percentiles every benchmark prints: name (as in JSON keys) and value in microseconds.
    public var percentiles: [(name: String, micros: Int)] {
        [("p50", micros(atPercentile: 50)), ("p99", micros(atPercentile: 99)),
         ("p99.9", micros(atPercentile: 99.9)), ("max", maxMicros)]
    }

    /// "p50 120 us, p99 870 us, p99.9 1.9 ms, max 4.1 ms".
    public var summary: String {
        percentiles.map { "\($0.name) \(Self.format(micros: $0.micros))" }.joined(separator: ", ")
    }

    /// JSON fields `<prefix>p50_us`, `<prefix>p99_us`, `<prefix>p999_us`, `<prefix>max_us`.
    public func jsonFields(prefix: String) -> [String: Int] {
        var fields: [String: Int] = [:]
        for (name, micros) in percentiles {
            fields["\(prefix)\(name.filter { $0 != "." })_us"] = micros
        }
        return fields
    }

    /// Microseconds below 10 ms, milliseconds with one decimal above.
    public static func format(micros: Int) -> String {
        if micros < 10_000 { return "\(micros) us" }
        let tenths = (micros + 50) / 100
        return "\(tenths / 10).\(tenths % 10) ms"
    }
}
