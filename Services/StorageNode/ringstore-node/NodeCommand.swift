import ArgumentParser
import Logging
import ServiceHost
import StorageNode

@main
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringstore-node",
        abstract: "Ringstore storage node."
    )

    @Option(help: "ROUTER endpoint for requests.")
    var listen = "tcp://127.0.0.1:7501"

    @Option(help: "The node's identity on the ring, host:port (default: the listen address).")
    var advertise: String?

    @Option(help: "Placement request endpoint.")
    var placement = "tcp://127.0.0.1:7400"

    @Option(help: "Placement event endpoint.")
    var placementEvents = "tcp://127.0.0.1:7401"

    @Option(help: "The node's weight on the ring (1...1000).")
    var weight = 1

    @Option(help: "Seconds between heartbeats to placement.")
    var heartbeatInterval = 1.0

    @OptionGroup var server: ServerOptions

    func validate() throws {
        try validateEndpoint(listen, option: "listen")
        try validateEndpoint(placement, option: "placement")
        try validateEndpoint(placementEvents, option: "placement-events")
        if let advertise {
            try validateEndpoint(Endpoint.endpoint(for: advertise), option: "advertise")
        }
        guard (1...1000).contains(weight) else { throw ValidationError("--weight must be 1...1000") }
        guard heartbeatInterval > 0, heartbeatInterval <= 60 else { throw ValidationError("--heartbeat-interval must be in (0, 60] seconds") }
    }

    func run() async throws {
        ServiceRunner.bootstrapLogging(level: server.logLevel)
        let logger = Logger(label: "ringstore.node")
        let options = StorageNodeOptions(listen: listen, advertise: advertise, placement: placement, placementEvents: placementEvents,
                                         weight: weight, heartbeatInterval: .seconds(heartbeatInterval))
        try await ServiceRunner.run([StorageNodeServer.service(options: options, logger: logger)], logger: logger)
    }
}
