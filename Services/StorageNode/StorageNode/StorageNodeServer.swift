import Foundation
import Logging
import RPC
import RingProtocol
import ServiceHost

/// How a storage node runs and how it is known on the ring.
public struct StorageNodeOptions: Sendable {
    /// The ROUTER endpoint for requests.
    public var listen: String
    /// The node's identity on the ring, `host:port`; by default the listen address.
    public var advertise: String?
    /// The placement service's request and event endpoints.
    public var placement: String
    public var placementEvents: String
    /// The node's weight on the ring.
    public var weight: Int
    /// How often the node heartbeats to placement.
    public var heartbeatInterval: Duration

    public init(listen: String = "tcp://127.0.0.1:7501", advertise: String? = nil,
                placement: String = "tcp://127.0.0.1:7400", placementEvents: String = "tcp://127.0.0.1:7401",
                weight: Int = 1, heartbeatInterval: Duration = .seconds(1)) {
        self.listen = listen
        self.advertise = advertise
        self.placement = placement
        self.placementEvents = placementEvents
        self.weight = weight
        self.heartbeatInterval = heartbeatInterval
    }
}

/// A storage node's sockets and handlers on its reactor thread.
///
/// It answers Health and Echo, joins the cluster through placement, heartbeats
/// and follows the ring; the engine, replication and migration arrive with
/// their issues.
public final class StorageNodeServer {
    public let rpc: RPCServer
    public let address: String
    let placement: PlacementLink

    public init(reactor: Reactor, options: StorageNodeOptions) throws {
        rpc = try RPCServer(reactor: reactor, endpoint: options.listen)
        let address = options.advertise ?? Endpoint.address(of: rpc.endpoint)
        self.address = address
        placement = try PlacementLink(reactor: reactor, address: address, weight: options.weight,
                                      placement: options.placement, placementEvents: options.placementEvents,
                                      heartbeatInterval: options.heartbeatInterval)
        Diagnostics.register(on: rpc, health: StorageMethods.health, echo: StorageMethods.echo,
                             service: "node", address: address) { [unowned self] in
            [
                "ring_epoch": "\(placement.ring?.ringEpoch ?? 0)",
                "ring_members": "\(placement.ring?.members.count ?? 0)",
                "member_state": placement.removed ? "removed" : placement.joined ? "\(placement.memberState)" : "joining",
            ]
        }
        reactor.logger.info("node.listening", metadata: ["rpc.endpoint": "\(rpc.endpoint)", "node.address": "\(address)",
                                                         "placement.endpoint": "\(options.placement)"])
    }

    /// The storage node as a lifecycle `Service`, for the executable and tests.
    public static func service(options: StorageNodeOptions, logger: Logger) -> ReactorService {
        ReactorService(name: "node", logger: logger) { reactor in
            try StorageNodeServer(reactor: reactor, options: options)
        }
    }
}
