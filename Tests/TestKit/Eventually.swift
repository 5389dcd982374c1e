#if canImport(Glibc)
import Glibc
#endif

/// Waiting for conditions with a deadline instead of sleeping.
public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public let after: Duration
    public var description: String { "timed out after \(after) waiting for \(what)" }
}

/// Polls `condition` every `interval` until it is true; throws `TimedOut` after `timeout`.
public func waitUntil(_ what: String, timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20),
                      _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        if try await condition() { return }
        guard clock.now < deadline else { throw TimedOut(what: what, after: timeout) }
        try await Task.sleep(for: interval)
    }
}

/// The synchronous form, for tests that own ZeroMQ sockets on their thread.
public func waitUntilSync(_ what: String, timeout: Duration = .seconds(10), interval: Duration = .milliseconds(10),
                          _ condition: () throws -> Bool) throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        if try condition() { return }
        guard clock.now < deadline else { throw TimedOut(what: what, after: timeout) }
        let (seconds, attoseconds) = interval.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        nanosleep(&request, nil)
    }
}
