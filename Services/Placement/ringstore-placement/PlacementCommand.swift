import ArgumentParser
import Logging
import PlacementService
import ServiceHost

@main
struct PlacementCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringstore-placement",
        abstract: "Ringstore placement service: membership, the ring and the cluster event stream."
    )

    @Option(help: "ROUTER endpoint for requests.")
    var listen = "tcp://127.0.0.1:7400"

    @Option(help: "PUB endpoint for events.")
    var publish = "tcp://127.0.0.1:7401"

    @OptionGroup var server: ServerOptions

    func validate() throws {
        try validateEndpoint(listen, option: "listen")
        try validateEndpoint(publish, option: "publish")
    }

    func run() async throws {
        ServiceRunner.bootstrapLogging(level: server.logLevel)
        let logger = Logger(label: "ringstore.placement")
        let service = PlacementServer.service(options: .init(listen: listen, publish: publish), logger: logger)
        try await ServiceRunner.run([service], logger: logger)
    }
}
