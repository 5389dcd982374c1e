import Logging
import RPC
import RingProtocol
import ServiceHost

/// Where a storage node listens and how it is known on the ring.
public struct StorageNodeOptions: Sendable {
    /// The ROUTER endpoint for requests.
    public var listen: String
    /// The node's identity on the ring, `host:port`; by default the listen address.
    public var advertise: String?

    public init(listen: String = "tcp://127.0.0.1:7501", advertise: String? = nil) {
        self.listen = listen
        self.advertise = advertise
    }
}

/// A storage node's sockets and handlers on its reactor thread.
///
/// For now it answers Health and Echo; the engine, replication and migration
/// arrive with their issues.
public final class StorageNodeServer {
    public let rpc: RPCServer
    public let address: String

    public init(reactor: Reactor, options: StorageNodeOptions) throws {
        rpc = try RPCServer(reactor: reactor, endpoint: options.listen)
        address = options.advertise ?? Endpoint.address(of: rpc.endpoint)
        Diagnostics.register(on: rpc, health: StorageMethods.health, echo: StorageMethods.echo,
                             service: "node", address: address)
        reactor.logger.info("node.listening", metadata: ["rpc.endpoint": "\(rpc.endpoint)", "node.address": "\(address)"])
    }

    /// The storage node as a lifecycle `Service`, for the executable and tests.
    public static func service(options: StorageNodeOptions, logger: Logger) -> ReactorService {
        ReactorService(name: "node", logger: logger) { reactor in
            try StorageNodeServer(reactor: reactor, options: options)
        }
    }
}
