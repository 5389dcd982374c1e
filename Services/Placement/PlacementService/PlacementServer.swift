import Logging
import RPC
import RingProtocol
import ServiceHost

/// Where the placement service listens.
public struct PlacementOptions: Sendable {
    /// The ROUTER endpoint for requests.
    public var listen: String
    /// The PUB endpoint for membership, ring and migration events.
    public var publish: String

    public init(listen: String = "tcp://127.0.0.1:7400", publish: String = "tcp://127.0.0.1:7401") {
        self.listen = listen
        self.publish = publish
    }
}

/// The placement service's sockets and handlers on its reactor thread.
///
/// For now it answers Health and Echo and owns the event socket; membership,
/// failure detection and the ring arrive with their issues.
public final class PlacementServer {
    public let rpc: RPCServer
    public let events: EventPublisher

    public init(reactor: Reactor, options: PlacementOptions) throws {
        rpc = try RPCServer(reactor: reactor, endpoint: options.listen)
        let address = Endpoint.address(of: rpc.endpoint)
        events = try EventPublisher(reactor: reactor, endpoint: options.publish, source: address)
        Diagnostics.register(on: rpc, health: PlacementMethods.health, echo: PlacementMethods.echo,
                             service: "placement", address: address)
        reactor.logger.info("placement.listening", metadata: ["rpc.endpoint": "\(rpc.endpoint)", "events.endpoint": "\(events.endpoint)"])
    }

    /// The placement service as a lifecycle `Service`, for the executable and tests.
    public static func service(options: PlacementOptions, logger: Logger) -> ReactorService {
        ReactorService(name: "placement", logger: logger) { reactor in
            try PlacementServer(reactor: reactor, options: options)
        }
    }
}
