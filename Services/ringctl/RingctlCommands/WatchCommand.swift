import ArgumentParser
import RingstoreClient

/// `ringctl watch`: the cluster's live event stream, as ``ClusterWatch``
/// follows it (the clone pattern: snapshot, then only newer events, a fresh
/// snapshot after a gap or a restart), one line per item.
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

    static let knownTopics = ClusterWatch.topics

    func validate() throws {
        for topic in topics where !Self.knownTopics.contains(topic) {
            throw ValidationError("--topic \(topic): expected one of \(Self.knownTopics.joined(separator: ", "))")
        }
        guard count >= 0 else { throw ValidationError("--count must not be negative") }
    }

    func run() async throws {
        let context = try cluster.context()
        defer { context.shutdown() }
        let watch = try ClusterWatch(context: context, endpoints: cluster.endpoints, topics: topics, caller: cluster.caller,
                                     callTimeout: cluster.callTimeout)
        defer { watch.close() }
        var printed = 0
        for await item in watch.items {
            switch item {
            case .notice(let message):
                printError("ringctl: \(message)")
            case .snapshot(let snapshot, let initial):
                if !(initial && noSnapshot) {
                    for line in EventFormatter.snapshotLines(snapshot, json: cluster.json) { writeLine(line) }
                }
            case .lockSnapshot(let snapshot, let initial):
                if !(initial && noSnapshot) {
                    for line in EventFormatter.lockSnapshotLines(snapshot, json: cluster.json) { writeLine(line) }
                }
            case .event(let event):
                writeLine(cluster.json ? EventFormatter.json(event) : EventFormatter.human(event))
                printed += 1
                if count > 0 && printed >= count { return }
            }
        }
    }
}
