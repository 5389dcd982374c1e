import Etcd
import Foundation
import Glibc
import Synchronization
import Testing
import TestKit

/// Collects a watch's events on a task of its own, so a test can wait for
/// a count with a deadline.
final class WatchCollector: Sendable {
    private final class Storage: Sendable {
        let state = Mutex<(events: [WatchEvent], ended: Bool, error: (any Error)?)>(([], false, nil))
    }

    private let storage = Storage()
    private let task: Task<Void, Never>

    init(_ watch: EtcdWatch) {
        let storage = self.storage
        task = Task {
            do {
                for try await event in watch.events { storage.state.withLock { $0.events.append(event) } }
                storage.state.withLock { $0.ended = true }
            } catch {
                storage.state.withLock {
                    $0.ended = true
                    $0.error = error
                }
            }
        }
    }

    var events: [WatchEvent] { storage.state.withLock { $0.events } }
    var ended: Bool { storage.state.withLock { $0.ended } }
    var error: (any Error)? { storage.state.withLock { $0.error } }

    /// Waits until at least `count` events arrived; fails with what did arrive.
    @discardableResult
    func wait(for count: Int, timeout: Duration = .seconds(10)) async throws -> [WatchEvent] {
        do {
            try await waitUntil("\(count) watch events", timeout: timeout) {
                let (events, ended, error) = storage.state.withLock { ($0.events, $0.ended, $0.error) }
                if ended && events.count < count {
                    throw FixtureError("the watch ended after \(events.count) of \(count) events: \(error.map { "\($0)" } ?? "no error")")
                }
                return events.count >= count
            }
        } catch let timedOut as TimedOut {
            throw FixtureError("\(timedOut); got \(events)")
        }
        return events
    }

    /// Waits until the stream ended (after cancel, or with an error).
    func waitEnded(timeout: Duration = .seconds(10)) async throws {
        try await waitUntil("the watch stream to end", timeout: timeout) { ended }
    }

    deinit { task.cancel() }
}
