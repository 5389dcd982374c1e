import RPC
import RingProtocol

/// The cluster's live event stream, kept consistent by the clone pattern.
///
/// It subscribes to placement's and the lock service's event ports first,
/// then takes each publisher's snapshot and yields it, then yields only
/// events newer than the snapshot. A gap in a topic's sequence numbers, or a
/// new incarnation of a publisher (a restart, noticed from a snapshot taken
/// every second even when no event follows), makes it take and yield a fresh
/// snapshot, so what a watcher builds from the items stays consistent; it
/// keeps going while the publishers restart.
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
            subscription = try EventSubscription(context: context.zmq, endpoints: [endpoints.placementEvents, endpoints.lockEvents],
                                                 topics: topics, security: context.credentials?.security)
        } catch {
            throw .invalidArgument("cannot subscribe to \(endpoints.placementEvents) and \(endpoints.lockEvents): \(error)")
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
            output.yield(.notice("no snapshot from \(endpoints.placement) yet; showing events as they come"))
        }
        var lockTracker = SequenceTracker()
        if wants.locks {
            if let snapshot = try? await locks.snapshot() {
                lockTracker.reset(incarnation: snapshot.incarnation, lastSequence: snapshot.lastSequence)
                output.yield(.lockSnapshot(snapshot, initial: true))
            } else {
                output.yield(.notice("no snapshot from the lock service at \(endpoints.locks) yet; showing its events as they come"))
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
                if tracker.isNewIncarnation(snapshot.incarnation) {
                    output.yield(.notice("placement restarted (incarnation \(snapshot.incarnation)); fresh snapshot follows"))
                    tracker.reset(incarnation: snapshot.incarnation, lastSequence: snapshot.lastSequence)
                    if wants.placement { output.yield(.snapshot(snapshot, initial: false)) }
                }
            case .lockSnapshot(let snapshot):
                if lockTracker.isNewIncarnation(snapshot.incarnation) {
                    output.yield(.notice("the lock service restarted (incarnation \(snapshot.incarnation)); fresh snapshot follows"))
                    lockTracker.reset(incarnation: snapshot.incarnation, lastSequence: snapshot.lastSequence)
                    output.yield(.lockSnapshot(snapshot, initial: false))
                }
            case .event(let received):
                let event = ClusterEvent(topic: received.topic, received.event)
                let isNew: Bool
                if event.topic != "lock" {
                    isNew = await tracker.admit(event) {
                        guard let snapshot = try? await placement.snapshot() else { return nil }
                        if wants.placement { output.yield(.snapshot(snapshot, initial: false)) }
                        return (snapshot.incarnation, snapshot.lastSequence)
                    }
                } else {
                    isNew = await lockTracker.admit(event) {
                        guard let snapshot = try? await locks.snapshot() else { return nil }
                        output.yield(.lockSnapshot(snapshot, initial: false))
                        return (snapshot.incarnation, snapshot.lastSequence)
                    }
                }
                if isNew { output.yield(.event(event)) }
            }
        }
    }
}

/// Which events of one publisher (placement, or the lock service) a watcher
/// has seen, per topic, within one incarnation of that publisher.
struct SequenceTracker {
    enum Verdict: Equatable { case seen, next, gapOrRestart }

    private var incarnation: UInt64?
    private var last: [String: UInt64] = [:]

    func isNewIncarnation(_ incarnation: UInt64) -> Bool {
        self.incarnation != incarnation
    }

    mutating func reset(incarnation: UInt64, lastSequence: [String: UInt64]) {
        self.incarnation = incarnation
        last = lastSequence
    }

    func classify(_ event: ClusterEvent) -> Verdict {
        guard let incarnation, event.incarnation == incarnation else { return .gapOrRestart }
        let previous = last[event.topic, default: 0]
        if event.sequence <= previous { return .seen }
        return event.sequence == previous + 1 ? .next : .gapOrRestart
    }

    mutating func record(_ event: ClusterEvent) {
        if event.incarnation == incarnation { last[event.topic] = max(last[event.topic, default: 0], event.sequence) }
    }

    /// Whether `event` is news: not seen, and recorded now. After a gap or a
    /// restart it calls `resnapshot` (which yields the snapshot it takes) and
    /// resets to what that returns; an event the fresh snapshot already covers
    /// is not news. Without a snapshot the event passes, as the best there is.
    mutating func admit(_ event: ClusterEvent,
                        resnapshot: () async -> (incarnation: UInt64, lastSequence: [String: UInt64])?) async -> Bool {
        switch classify(event) {
        case .seen:
            return false
        case .next:
            break
        case .gapOrRestart:
            if let fresh = await resnapshot() {
                reset(incarnation: fresh.incarnation, lastSequence: fresh.lastSequence)
                if classify(event) == .seen { return false }
            }
        }
        record(event)
        return true
    }
}
