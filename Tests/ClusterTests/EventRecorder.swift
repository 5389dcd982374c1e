import Foundation
import RPC
import RingProtocol
import Synchronization
import TestKit
import ZeroMQ

/// Records the events placement publishes, for assertions about order.
///
/// `waitUntilConnected` makes the subscription provably live before a test
/// acts: it has placement publish probe events (through ReportMigration, on
/// the `migration` topic) until one arrives.
final class EventRecorder: Sendable {
    struct Recorded: Sendable {
        let topic: String
        let type: String
        let epoch: UInt64
        let seq: UInt64
        var address = ""
        var reason = ""
        /// Migration events: the (first) arc, sender(s), receiver(s), and whether the sender will retry.
        var arcStart: UInt32 = 0
        var arcEnd: UInt32 = 0
        var from = ""
        var to = ""
        var willRetry = false
    }

    private let subscription: EventSubscription
    private let recorded = RecordedList()
    private let context: ZMQContext

    /// Subscribes to `cluster`'s placement events, with the cluster's credentials.
    init(_ cluster: LocalCluster, topics: [String]) throws {
        context = try ZMQContext()
        subscription = try cluster.subscribe(cluster.placementEvents, topics: topics + ["migration"], context: context)
        let stream = subscription.events
        let recorded = self.recorded
        Task {
            for await received in stream {
                var event = Recorded(topic: received.topic, type: received.event.type, epoch: received.event.epoch,
                                     seq: received.event.seq)
                switch received.event.details {
                case .member(let member)?:
                    event.address = member.address
                case .migration(let migration)?:
                    event.reason = migration.reason
                    event.arcStart = migration.arcStart
                    event.arcEnd = migration.arcEnd
                    event.from = migration.from
                    event.to = migration.to
                    event.willRetry = migration.willRetry
                default: break
                }
                recorded.append(event)
            }
        }
    }

    deinit { subscription.close() }

    /// Everything recorded except probes.
    var events: [Recorded] { recorded.all.filter { $0.reason != "probe" } }

    /// Membership events about `address`, in arrival order.
    func events(for address: String) -> [Recorded] { events.filter { $0.address == address } }

    func waitUntilConnected(_ cluster: LocalCluster) async throws {
        let client = try cluster.rpc(cluster.placementEndpoint, caller: "event-recorder")
        defer { client.close() }
        let probe = WireReportMigrationRequest.with {
            $0.type = "migration_progress"
            $0.details.reason = "probe"
        }
        try await waitUntil("the event subscription to be live", timeout: .seconds(20), interval: .milliseconds(50)) {
            _ = try await client.call(PlacementMethods.reportMigration, probe)
            return recorded.all.contains { $0.reason == "probe" }
        }
    }

    /// Waits for an event of `type` about `address`; returns it.
    @discardableResult
    func waitFor(type: String, address: String, timeout: Duration = .seconds(20)) async throws -> Recorded {
        var found: Recorded?
        try await waitUntil("\(type) for \(address)", timeout: timeout) {
            found = events.first { $0.type == type && $0.address == address }
            return found != nil
        }
        return found!
    }
}

/// The recorded events, appended by the subscription task and read by tests.
final class RecordedList: Sendable {
    private let list = Mutex<[EventRecorder.Recorded]>([])
    func append(_ event: EventRecorder.Recorded) { list.withLock { $0.append(event) } }
    var all: [EventRecorder.Recorded] { list.withLock { $0 } }
}
