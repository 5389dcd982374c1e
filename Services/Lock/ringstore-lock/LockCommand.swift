import ArgumentParser
import LockService
import Logging
import ServiceHost

@main
struct LockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringstore-lock",
        abstract: "Ringstore lock service: leases, FIFO waiters and fencing tokens."
    )

    @Option(help: "ROUTER endpoint for requests.")
    var listen = "tcp://127.0.0.1:7410"

    @Option(help: "PUB endpoint for lock events.")
    var publish = "tcp://127.0.0.1:7411"

    @OptionGroup var server: ServerOptions

    func validate() throws {
        try validateEndpoint(listen, option: "listen")
        try validateEndpoint(publish, option: "publish")
    }

    func run() async throws {
        ServiceRunner.bootstrapLogging(level: server.logLevel)
        let logger = Logger(label: "ringstore.lock")
        let service = LockServer.service(options: .init(listen: listen, publish: publish), logger: logger)
        try await ServiceRunner.run([service], logger: logger)
    }
}
