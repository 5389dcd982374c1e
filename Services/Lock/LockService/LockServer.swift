import Logging
import RPC
import RingProtocol
import ServiceHost

/// Where the lock service listens.
public struct LockOptions: Sendable {
    /// The ROUTER endpoint for requests.
    public var listen: String
    /// The PUB endpoint for lock events.
    public var publish: String

    public init(listen: String = "tcp://127.0.0.1:7410", publish: String = "tcp://127.0.0.1:7411") {
        self.listen = listen
        self.publish = publish
    }
}

/// The lock service's sockets and handlers on its reactor thread.
///
/// For now it answers Health and Echo and owns the event socket; leases,
/// waiters and fencing tokens arrive with their issue.
public final class LockServer {
    public let rpc: RPCServer
    public let events: EventPublisher

    public init(reactor: Reactor, options: LockOptions) throws {
        rpc = try RPCServer(reactor: reactor, endpoint: options.listen)
        let address = Endpoint.address(of: rpc.endpoint)
        events = try EventPublisher(reactor: reactor, endpoint: options.publish, source: address)
        Diagnostics.register(on: rpc, health: LockMethods.health, echo: LockMethods.echo,
                             service: "lock", address: address)
        reactor.logger.info("lock.listening", metadata: ["rpc.endpoint": "\(rpc.endpoint)", "events.endpoint": "\(events.endpoint)"])
    }

    /// The lock service as a lifecycle `Service`, for the executable and tests.
    public static func service(options: LockOptions, logger: Logger) -> ReactorService {
        ReactorService(name: "lock", logger: logger) { reactor in
            try LockServer(reactor: reactor, options: options)
        }
    }
}
