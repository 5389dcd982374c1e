import RPC
import RingProtocol

/// The cluster's live event stream, kept consistent by the clone pattern.
///
/// It subscribes to placement's and the lock service's event ports first
/// (every replica's: only the leader publishes), then takes each
/// publisher's snapshot and yields it, then yields only events newer than
/// the snapshot. A gap in a topic's sequence numbers, or a new incarnation
/// of a publisher (a restart or a new leader, noticed from a snapshot taken
/// every second even when no event follows), makes it take and yield a fresh
/// snapshot, so what a watcher builds from the items stays consistent; an
/// event of an incarnation left behind (a replaced leader's, arriving late)
/// is dropped (``SequenceTracker``). It keeps going while the publishers
/// restart and the leaders change.
public final class ClusterWatch: Sendable {
    /// What the stream yields.
    public enum Item: Sendable {
        /// Placement's snapshot: `initial` for the first, else after a gap or restart.
        case snapshot(ClusterSnapshot, initial: Bool)
        /// The lock service's snapshot, likewise.
        case lockSnapshot(LockSnapshot, initial: Bool)
        case event(ClusterEvent)
        /// Something a watcher should be told (a publisher restarted, a snapshot could not be had).
        case notice(String)
    }

    public static let topics = ["membership", "ring", "migration", "lock"]

    /// The items, until ``close()``.
    public let items: AsyncStream<Item>
    private let subscription: EventSubscription
    private let placement: PlacementClient
    private let locks: LockClient
    private let task: Task<Void, Never>

    /// Watches `topics` (default: all of ``topics``) of the cluster at `endpoints`.
    public init(context: ClientContext, endpoints: ClusterEndpoints, topics: [String] = [], caller: String,
                callTimeout: Duration = .seconds(2)) throws(RingstoreError) {
        let topics = topics.isEmpty ? Self.topics : topics
        do {
            // Every replica's event endpoint: only the leader publishes, and the leader changes.
            subscription = try EventSubscription(context: context.zmq, endpoints: endpoints.placementEvents + endpoints.lockEvents,
                                                 topics: topics, security: context.credentials?.security)
        } catch {
            let publishers = ClusterEndpoints.describe(endpoints.placementEvents + endpoints.lockEvents)
            throw .invalidArgument("cannot subscribe to \(publishers): \(error)")
        }
        placement = try PlacementClient(context: context, endpoints: endpoints, caller: caller, callTimeout: callTimeout)
        locks = try LockClient(context: context, endpoints: endpoints, owner: caller, caller: caller, callTimeout: callTimeout)
        let (items, output) = AsyncStream.makeStream(of: Item.self)
        self.items = items
        let wants = Wants(placement: topics.contains("membership") || topics.contains("ring"), locks: topics.contains("lock"))
        task = Task { [subscription, placement, locks, endpoints] in
            await Self.run(subscription: subscription, placement: placement, locks: locks, endpoints: endpoints,
                           wants: wants, output: output)
        }
    }

    deinit { close() }

    /// Ends the stream and its connections.
    public func close() {
        task.cancel()
        subscription.close()
        placement.close()
        locks.close()
    }

    private struct Wants {
        let placement: Bool
        let locks: Bool
    }

    private enum Input: Sendable {
        case event(ReceivedEvent)
        case snapshot(ClusterSnapshot)
        case lockSnapshot(LockSnapshot)
    }

    private static func run(subscription: EventSubscription, placement: PlacementClient, locks: LockClient,
                            endpoints: ClusterEndpoints, wants: Wants, output: AsyncStream<Item>.Continuation) async {
        defer { output.finish() }
        var tracker = SequenceTracker()
        if let snapshot = try? await placement.snapshot() {
            tracker.reset(incarnation: snapshot.incarnation, lastSequence: snapshot.lastSequence)
            if wants.placement { output.yield(.snapshot(snapshot, initial: true)) }
        } else {
            output.yield(.notice("no snapshot from \(ClusterEndpoints.describe(endpoints.placement)) yet; showing events as they come"))
        }
        var lockTracker = SequenceTracker()
        if wants.locks {
            if let snapshot = try? await locks.snapshot() {
                lockTracker.reset(incarnation: snapshot.incarnation, lastSequence: snapshot.lastSequence)
                output.yield(.lockSnapshot(snapshot, initial: true))
            } else {
                output.yield(.notice("no snapshot from the lock service at \(ClusterEndpoints.describe(endpoints.locks)) yet; showing its events as they come"))
            }
        }

        // One stream of inputs: the events, and a fresh snapshot every second,
        // which notices a restart even when no event follows it.
        let (inputs, feed) = AsyncStream.makeStream(of: Input.self)
        let forwarder = Task {
            for await received in subscription.events { feed.yield(.event(received)) }
            feed.finish()
        }
        let poller = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if let snapshot = try? await placement.snapshot() { feed.yield(.snapshot(snapshot)) }
                if wants.locks, let snapshot = try? await locks.snapshot() { feed.yield(.lockSnapshot(snapshot)) }
            }
        }
        defer {
            forwarder.cancel()
            poller.cancel()
        }

        for await input in inputs {
            if Task.isCancelled { return }
            switch input {
            case .snapshot(let snapshot):
                if tracker.adopt(snapshot.incarnation, lastSequence: snapshot.lastSequence) {
                    output.yield(.notice("placement restarted or a new leader took over (incarnation \(snapshot.incarnation)); fresh snapshot follows"))
                    if wants.placement { output.yield(.snapshot(snapshot, initial: false)) }
                }
            case .lockSnapshot(let snapshot):
                if lockTracker.adopt(snapshot.incarnation, lastSequence: snapshot.lastSequence) {
                    output.yield(.notice("the lock service restarted or a new leader took over (incarnation \(snapshot.incarnation)); fresh snapshot follows"))
                    output.yield(.lockSnapshot(snapshot, initial: false))
                }
            case .event(let received):
                let event = ClusterEvent(topic: received.topic, received.event)
                if event.topic != "lock" {
                    var fresh: ClusterSnapshot?
                    let admission = await tracker.admit(event) {
                        fresh = try? await placement.snapshot()
                        return fresh.map { ($0.incarnation, $0.lastSequence) }
                    }
                    if admission.adoptedSnapshot, wants.placement, let fresh { output.yield(.snapshot(fresh, initial: false)) }
                    if admission.isNew { output.yield(.event(event)) }
                } else {
                    var fresh: LockSnapshot?
                    let admission = await lockTracker.admit(event) {
                        fresh = try? await locks.snapshot()
                        return fresh.map { ($0.incarnation, $0.lastSequence) }
                    }
                    if admission.adoptedSnapshot, let fresh { output.yield(.lockSnapshot(fresh, initial: false)) }
                    if admission.isNew { output.yield(.event(event)) }
                }
            }
        }
    }
}
