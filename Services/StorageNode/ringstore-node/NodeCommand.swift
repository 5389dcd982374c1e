import ArgumentParser
import Foundation
import Logging
import RPC
import ServiceHost
import StorageEngine
import StorageNode

extension SyncMode: ExpressibleByArgument {}

@main
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringstore-node",
        abstract: "Ringstore storage node.",
        version: Diagnostics.version
    )

    /// Options from flags, then RINGSTORE_* environment variables, then --config.
    static func main() async {
        await main(Configuration.processArguments(for: Self.self))
    }

    @Option(help: "The node's identity on the ring, host:port (default: the listen address).")
    var advertise: String?

    @Option(help: ArgumentHelp("CURVE: this node's own keypair (role node in the allowlist), for its calls to placement and its peers.",
                               valueName: "file"))
    var clientKey: String?

    @Option(help: "Placement request endpoints: one, or every replica's comma-separated (a:7400,b:7402); the node follows the leader.")
    var placement = "tcp://127.0.0.1:7400"

    @Option(help: "Placement event endpoints, comma-separated (default: each placement endpoint's port plus one).")
    var placementEvents: String?

    @Option(help: "The node's weight on the ring (1...1000).")
    var weight = 1

    @Option(help: "Seconds between heartbeats to placement.")
    var heartbeatInterval = 1.0

    @Option(help: "full: fsync every group commit (durable on power loss; the default). normal: durable on process crash only.")
    var sync: SyncMode = .full

    @Option(help: "Largest key accepted, in bytes.")
    var maxKeyBytes = 1024

    @Option(help: "Largest value accepted, in bytes.")
    var maxValueBytes = 1 << 20

    @Option(help: "Seconds a coordinator waits for one replica.")
    var replicaTimeout = 1.0

    @Option(help: "Seconds a delete's tombstone is kept before it is purged (default 10 days).")
    var tombstoneGrace = 864_000.0

    @Option(help: "Migration: records per batch sent to a new replica.")
    var migrationBatchKeys = 512

    @Option(help: "Migration: megabytes per second each outgoing transfer may send (0: unlimited).")
    var migrationRateMb = 0.0

    @Option(help: "Anti-entropy: seconds between periodic passes comparing this node's arcs with their other replicas (0: none).")
    var antiEntropyInterval = 60.0

    @Option(help: "Anti-entropy: megabytes per second of rows repaired, pushed and pulled (0: unlimited).")
    var antiEntropyRateMb = 4.0

    @Option(help: "Seconds a timestamp from a peer or a client may be ahead of this node's clock; further ahead is refused and logged.")
    var maxClockDrift = 5.0

    @Option(help: ArgumentHelp("Serve Redis's protocol (RESP2 and RESP3) on HOST:PORT too: any Redis client, redis-cli and redis-benchmark work against the cluster.",
                               valueName: "host:port"))
    var respListen: String?

    @Option(help: ArgumentHelp("RESP: the passwords AUTH accepts, ROLE PASSWORD [NAME] per line, mode 0600; re-read on SIGHUP. Required with CURVE on.",
                               valueName: "file"))
    var respPasswords: String?

    @OptionGroup var server: ServerOptions<NodeDefaults>

    func validate() throws {
        if respPasswords != nil && respListen == nil { throw ValidationError("--resp-passwords needs --resp-listen") }
        if respListen != nil && respPasswords == nil && !server.insecure {
            throw ValidationError("--resp-listen with CURVE on needs --resp-passwords: the Redis protocol has no keys, so AUTH is how it is secured")
        }
        if clientKey != nil && server.serverKey == nil { throw ValidationError("--client-key needs --server-key and --allowlist") }
        if server.serverKey != nil && clientKey == nil { throw ValidationError("--server-key needs --client-key: the node's identity for its own calls") }
        try validateEndpoints(placement, option: "placement")
        if let placementEvents { try validateEndpoints(placementEvents, option: "placement-events") }
        if let advertise {
            try validateEndpoint(Endpoint.endpoint(for: advertise), option: "advertise")
        }
        guard (1...1000).contains(weight) else { throw ValidationError("--weight must be 1...1000") }
        guard heartbeatInterval > 0, heartbeatInterval <= 60 else { throw ValidationError("--heartbeat-interval must be in (0, 60] seconds") }
        guard (1...65_536).contains(maxKeyBytes) else { throw ValidationError("--max-key-bytes must be 1...65536") }
        guard (0...(64 << 20)).contains(maxValueBytes) else { throw ValidationError("--max-value-bytes must be 0...67108864") }
        guard replicaTimeout > 0, replicaTimeout <= 60 else { throw ValidationError("--replica-timeout must be in (0, 60] seconds") }
        guard tombstoneGrace >= 1 else { throw ValidationError("--tombstone-grace must be at least 1 second") }
        guard (1...100_000).contains(migrationBatchKeys) else { throw ValidationError("--migration-batch-keys must be 1...100000") }
        guard migrationRateMb >= 0, migrationRateMb <= 100_000 else { throw ValidationError("--migration-rate-mb must be 0...100000") }
        guard antiEntropyInterval >= 0, antiEntropyInterval <= 86_400 else { throw ValidationError("--anti-entropy-interval must be 0...86400 seconds") }
        guard antiEntropyRateMb >= 0, antiEntropyRateMb <= 100_000 else { throw ValidationError("--anti-entropy-rate-mb must be 0...100000") }
        guard maxClockDrift >= 0.001, maxClockDrift <= 86_400 else { throw ValidationError("--max-clock-drift must be 0.001...86400 seconds") }
    }

    func run() async throws {
        try server.prepareProcess()
        let logger = Logger(label: "ringstore.node")
        var options = StorageNodeOptions(listen: server.listen, advertise: advertise, placement: placement, placementEvents: placementEvents,
                                         weight: weight, heartbeatInterval: .seconds(heartbeatInterval),
                                         dataDirectory: server.dataDirectory, sync: sync,
                                         maxKeyBytes: maxKeyBytes, maxValueBytes: maxValueBytes,
                                         replicaTimeout: .seconds(replicaTimeout),
                                         tombstoneGrace: .seconds(tombstoneGrace))
        options.security = try server.security(clientKey: clientKey, logger: logger)
        options.operations = try server.operations()
        options.migrationBatchKeys = migrationBatchKeys
        options.migrationRateLimit = Int(migrationRateMb * 1_000_000)
        options.antiEntropyInterval = .seconds(antiEntropyInterval)
        options.antiEntropyRateLimit = Int(antiEntropyRateMb * 1_000_000)
        options.maxClockDrift = .seconds(maxClockDrift)
        options.respListen = respListen
        options.respPasswords = respPasswords.map { URL(fileURLWithPath: $0) }
        try await ServiceRunner.run([StorageNodeServer.service(options: options, logger: logger)], logger: logger)
    }
}

enum NodeDefaults: ServiceDefaults {
    static let listen = "tcp://127.0.0.1:7501"
    static let dataDir = "node-data"
    static let dataDirHelp = "Directory of the node's database."
}

/// Checks a comma-separated list of endpoints, throwing a `ValidationError` that names the option.
private func validateEndpoints(_ list: String, option: String) throws {
    let endpoints = Endpoint.list(list)
    guard !endpoints.isEmpty else { throw ValidationError("--\(option): no endpoint in '\(list)'") }
    for endpoint in endpoints { try validateEndpoint(endpoint, option: option) }
}
