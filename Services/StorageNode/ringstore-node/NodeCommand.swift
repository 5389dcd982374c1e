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

    @OptionGroup var server: ServerOptions

    func validate() throws {
        try validateEndpoint(listen, option: "listen")
        if let advertise {
            try validateEndpoint(Endpoint.endpoint(for: advertise), option: "advertise")
        }
    }

    func run() async throws {
        ServiceRunner.bootstrapLogging(level: server.logLevel)
        let logger = Logger(label: "ringstore.node")
        let service = StorageNodeServer.service(options: .init(listen: listen, advertise: advertise), logger: logger)
        try await ServiceRunner.run([service], logger: logger)
    }
}
