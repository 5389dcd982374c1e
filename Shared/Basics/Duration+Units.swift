/// Conversions of `Duration` to the units the wire, the logs and the
/// figures use: the one place they are written out.
extension Duration {
    /// Whole nanoseconds, rounded toward zero.
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }

    /// Whole microseconds, rounded toward zero.
    public var wholeMicroseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1_000_000 &+ attoseconds / 1_000_000_000_000
    }

    /// Whole milliseconds, rounded toward zero.
    public var wholeMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1000 &+ attoseconds / 1_000_000_000_000_000
    }

    /// Microseconds, rounded up: a latency of a few nanoseconds counts as one.
    public var microsecondsRoundedUp: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1_000_000 &+ (attoseconds + 999_999_999_999) / 1_000_000_000_000
    }

    /// Milliseconds, rounded up: for a lease or a poll timeout, which a
    /// sub-millisecond remainder must not shorten to 0.
    public var millisecondsRoundedUp: Int64 {
        let (seconds, attoseconds) = components
        return seconds &* 1000 &+ (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    }

    /// Seconds as a floating-point number, for rates and figures.
    public var inSeconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// Milliseconds as a floating-point number, for latencies.
    public var inMilliseconds: Double { inSeconds * 1000 }

    /// A human form: `1.5s`, `250ms`.
    public var shortDescription: String {
        let millis = wholeMilliseconds
        if millis % 1000 == 0 { return "\(millis / 1000)s" }
        if millis >= 1000 { return "\(Double(millis) / 1000)s" }
        return "\(millis)ms"
    }
}
