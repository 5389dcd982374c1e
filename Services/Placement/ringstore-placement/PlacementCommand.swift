import ArgumentParser
import Foundation
import Logging
import PlacementService
import ServiceHost

@main
struct PlacementCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringstore-placement",
        abstract: "Ringstore placement service: membership, failure detection, the ring and the cluster event stream.",
        version: Diagnostics.version
    )

    /// Options from flags, then RINGSTORE_* environment variables, then --config.
    static func main() async {
        await main(Configuration.processArguments(for: Self.self))
    }

    @Option(help: "PUB endpoint for events.")
    var publish = "tcp://127.0.0.1:7401"

    @Option(help: "Replicas per key (N).")
    var replicas = 3

    @Option(help: "Ring density: MD5 digests per unit of weight (40 = Ketama's 160 points).")
    var density = 40

    @Option(help: "The cluster's write quorum W for requests that set none (0: a majority of N). Nodes and clients take it from the ring.")
    var defaultW = 0

    @Option(help: "The cluster's read quorum R for requests that set none (0: a majority of N). Nodes and clients take it from the ring.")
    var defaultR = 0

    @Option(help: "Seconds without a heartbeat before a member is suspect.")
    var suspectAfter = 3.0

    @Option(help: "Seconds without a heartbeat before a member is down.")
    var downAfter = 10.0

    @Option(help: "Remove a member automatically after this many seconds down (0: never).")
    var removeAfter = 0.0

    @OptionGroup var replication: ReplicationOptions

    @OptionGroup var server: ServerOptions<PlacementDefaults>

    func validate() throws {
        try validateEndpoint(publish, option: "publish")
        guard (1...16).contains(replicas) else { throw ValidationError("--replicas must be 1...16") }
        guard (1...4096).contains(density) else { throw ValidationError("--density must be 1...4096") }
        guard (0...replicas).contains(defaultW), (0...replicas).contains(defaultR) else {
            throw ValidationError("--default-w and --default-r must be 0 (a majority of N) or 1...N (N=\(replicas))")
        }
        guard suspectAfter > 0 else { throw ValidationError("--suspect-after must be positive") }
        guard downAfter > suspectAfter else { throw ValidationError("--down-after must be longer than --suspect-after") }
        guard removeAfter >= 0 else { throw ValidationError("--remove-after must be 0 (never) or positive") }
    }

    func run() async throws {
        try server.prepareProcess()
        let logger = Logger(label: "ringstore.placement")
        var settings = MembershipSettings(
            suspectAfter: .seconds(suspectAfter), downAfter: .seconds(downAfter),
            removeAfter: removeAfter > 0 ? .seconds(removeAfter) : nil,
            replicas: replicas, density: density)
        settings.writeQuorum = defaultW
        settings.readQuorum = defaultR
        let n = replicas, w = defaultW == 0 ? replicas / 2 + 1 : defaultW, r = defaultR == 0 ? replicas / 2 + 1 : defaultR
        if w + r <= n {
            logger.warning("placement.quorums.overlap_none", metadata: [
                "cluster.n": "\(n)", "cluster.w": "\(w)", "cluster.r": "\(r)",
                "cluster.note": "W + R <= N: a read need not see the latest acknowledged write",
            ])
        }
        let tick = min(Duration.milliseconds(100), .seconds(suspectAfter / 10))
        var options = PlacementOptions(listen: server.listen, publish: publish, dataDirectory: server.dataDirectory,
                                       settings: settings, tickInterval: tick)
        options.security = try server.security(logger: logger)
        options.operations = try server.operations()
        options.replication = replication.settings
        try await ServiceRunner.run([PlacementServer.service(options: options, logger: logger)], logger: logger)
    }
}

enum PlacementDefaults: ServiceDefaults {
    static let listen = "tcp://127.0.0.1:7400"
    static let dataDir = "placement-data"
    static let dataDirHelp = "Directory for the persisted membership and epoch."
}
