import ArgumentParser
import Foundation
import RPC
import RingProtocol
import RingstoreClient
import ZeroMQ

/// `ringctl watch`: the cluster's live event stream.
///
/// Follows the clone pattern: it subscribes first, then fetches placement's
/// snapshot and prints it, then prints only events newer than the snapshot.
/// A gap in a topic's sequence numbers, or a new placement incarnation (a
/// restart), makes it fetch and print a fresh snapshot, so what it shows stays
/// consistent; it keeps going while placement restarts. The `lock` topic is
/// followed the same way against the lock service's own snapshot.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Show the cluster's events as they happen: membership, ring, migration, lock.",
        discussion: "Prints the current snapshot first (snapshot_member, snapshot_ring and snapshot_lock lines), then one line per event. The lock service's events come from its event port, the request port plus one."
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(name: .customLong("topic"), help: "Only this topic (membership, ring, migration, lock); repeatable.")
    var topics: [String] = []

    @Option(help: "Exit after this many events (snapshot lines not counted); 0: run until interrupted.")
    var count = 0

    @Flag(help: "Do not print the snapshot first.")
    var noSnapshot = false

    static let knownTopics = ["membership", "ring", "migration", "lock"]

    func validate() throws {
        for topic in topics where !Self.knownTopics.contains(topic) {
            throw ValidationError("--topic \(topic): expected one of \(Self.knownTopics.joined(separator: ", "))")
        }
        guard count >= 0 else { throw ValidationError("--count must not be negative") }
    }

    func run() async throws {
        let endpoints = cluster.endpoints
        let context = try ZMQContext()
        defer { context.shutdown() }
        let subscription = try EventSubscription(context: context, endpoints: [endpoints.placementEvents, endpoints.lockEvents],
                                                 topics: topics.isEmpty ? Self.knownTopics : topics)
        defer { subscription.close() }
        let client = try RPCClient(context: context, endpoint: endpoints.placement, caller: cluster.caller)
        defer { client.close() }
        let wantsPlacementSnapshot = topics.isEmpty || topics.contains("membership") || topics.contains("ring")
        let locks = try RPCClient(context: context, endpoint: endpoints.locks, caller: cluster.caller)
        defer { locks.close() }
        let wantsLocks = topics.isEmpty || topics.contains("lock")

        var tracker = SequenceTracker()
        if let snapshot = await snapshot(client) {
            tracker.reset(to: snapshot)
            if !noSnapshot && wantsPlacementSnapshot { emit(snapshot) }
        } else {
            printError("ringctl: no snapshot from \(endpoints.placement) yet; showing events as they come")
        }
        var lockTracker = SequenceTracker()
        if wantsLocks {
            if let snapshot = await lockSnapshot(locks) {
                lockTracker.reset(incarnation: snapshot.incarnation, lastSeq: snapshot.lastSeq)
                if !noSnapshot { emit(snapshot) }
            } else {
                printError("ringctl: no snapshot from the lock service at \(endpoints.locks) yet; showing its events as they come")
            }
        }

        // One stream of inputs: the events, and a fresh snapshot every second,
        // which notices a placement restart (a new incarnation) even when no
        // event follows it.
        let (inputs, feed) = AsyncStream.makeStream(of: WatchInput.self)
        let forwarder = Task {
            for await received in subscription.events { feed.yield(.event(received)) }
            feed.finish()
        }
        let poller = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                if let snapshot = await snapshot(client) { feed.yield(.snapshot(snapshot)) }
                if wantsLocks, let snapshot = await lockSnapshot(locks) { feed.yield(.lockSnapshot(snapshot)) }
            }
        }
        defer {
            forwarder.cancel()
            poller.cancel()
        }

        var printed = 0
        for await input in inputs {
            let received: ReceivedEvent
            switch input {
            case .snapshot(let snapshot):
                if tracker.isNewIncarnation(snapshot) {
                    printError("ringctl: placement restarted (incarnation \(snapshot.incarnation)); fresh snapshot follows")
                    tracker.reset(to: snapshot)
                    if wantsPlacementSnapshot { emit(snapshot) }
                }
                continue
            case .lockSnapshot(let snapshot):
                if lockTracker.isNewIncarnation(snapshot.incarnation) {
                    printError("ringctl: the lock service restarted (incarnation \(snapshot.incarnation)); fresh snapshot follows")
                    lockTracker.reset(incarnation: snapshot.incarnation, lastSeq: snapshot.lastSeq)
                    emit(snapshot)
                }
                continue
            case .event(let event):
                received = event
            }
            let event = received.event
            if received.topic != "lock" {
                switch tracker.classify(topic: received.topic, event) {
                case .seen:
                    continue
                case .next:
                    break
                case .gapOrRestart:
                    if let snapshot = await snapshot(client) {
                        tracker.reset(to: snapshot)
                        if wantsPlacementSnapshot { emit(snapshot) }
                        if tracker.classify(topic: received.topic, event) == .seen { continue }
                    }
                }
                tracker.record(topic: received.topic, event)
            } else {
                switch lockTracker.classify(topic: received.topic, event) {
                case .seen:
                    continue
                case .next:
                    break
                case .gapOrRestart:
                    if let snapshot = await lockSnapshot(locks) {
                        lockTracker.reset(incarnation: snapshot.incarnation, lastSeq: snapshot.lastSeq)
                        emit(snapshot)
                        if lockTracker.classify(topic: received.topic, event) == .seen { continue }
                    }
                }
                lockTracker.record(topic: received.topic, event)
            }
            writeLine(cluster.json ? EventFormatter.json(topic: received.topic, event) : EventFormatter.human(topic: received.topic, event))
            printed += 1
            if count > 0 && printed >= count { break }
        }
    }

    private func emit(_ snapshot: WireSnapshotReply) {
        for line in EventFormatter.snapshotLines(snapshot, json: cluster.json) { writeLine(line) }
    }

    private func emit(_ snapshot: WireLockSnapshotReply) {
        for line in EventFormatter.lockSnapshotLines(snapshot, json: cluster.json) { writeLine(line) }
    }

    /// Writes straight to stdout, unbuffered, so a pipe sees each event at once.
    private func writeLine(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    private func snapshot(_ client: RPCClient) async -> WireSnapshotReply? {
        try? await client.call(PlacementMethods.snapshot, WireSnapshotRequest(), options: CallOptions(timeout: cluster.callTimeout))
    }
}

/// What the watch loop reacts to.
enum WatchInput: Sendable {
    case event(ReceivedEvent)
    case snapshot(WireSnapshotReply)
    case lockSnapshot(WireLockSnapshotReply)
}

/// Which events of one publisher (placement, or the lock service) a watcher
/// has seen, per topic, within one incarnation of that publisher.
struct SequenceTracker {
    enum Verdict: Equatable { case seen, next, gapOrRestart }

    private var incarnation: UInt64?
    private var last: [String: UInt64] = [:]

    /// Whether `snapshot` comes from another run of placement than the one tracked.
    func isNewIncarnation(_ snapshot: WireSnapshotReply) -> Bool {
        isNewIncarnation(snapshot.incarnation)
    }

    func isNewIncarnation(_ incarnation: UInt64) -> Bool {
        self.incarnation != incarnation
    }

    mutating func reset(to snapshot: WireSnapshotReply) {
        reset(incarnation: snapshot.incarnation, lastSeq: snapshot.lastSeq)
    }

    mutating func reset(incarnation: UInt64, lastSeq: [String: UInt64]) {
        self.incarnation = incarnation
        last = lastSeq
    }

    func classify(topic: String, _ event: WireEvent) -> Verdict {
        guard let incarnation, event.incarnation == incarnation else { return .gapOrRestart }
        let previous = last[topic, default: 0]
        if event.seq <= previous { return .seen }
        return event.seq == previous + 1 ? .next : .gapOrRestart
    }

    mutating func record(topic: String, _ event: WireEvent) {
        if event.incarnation == incarnation { last[topic] = max(last[topic, default: 0], event.seq) }
    }
}
