import Logging
import RPC
import ZeroMQ

/// One reactor-owned client per peer node, created on first use and kept:
/// peer calls are sent and completed on the node's reactor thread.
final class PeerClients {
    private let reactor: Reactor
    private let caller: String
    private let logger: Logger
    private let security: ClientSecurity?
    private var clients: [String: ReactorClient] = [:]

    init(reactor: Reactor, caller: String, logger: Logger, security: ClientSecurity? = nil) {
        self.reactor = reactor
        self.caller = caller
        self.logger = logger
        self.security = security
    }

    /// The client for `address` (`host:port`), or `nil` if it cannot be created.
    func client(for address: String) -> ReactorClient? {
        if let client = clients[address] { return client }
        do {
            let client = try ReactorClient(reactor: reactor, endpoint: Endpoint.endpoint(for: address), caller: caller, logger: logger,
                                           security: security)
            clients[address] = client
            return client
        } catch {
            logger.error("node.peer.client.failed", metadata: ["peer.address": "\(address)", "rpc.error": "\(error)"])
            return nil
        }
    }

    /// Drops the client of a member that left the cluster.
    func forget(_ address: String) {
        clients.removeValue(forKey: address)?.close()
    }

    deinit {
        // The node is being torn down: its callbacks (which capture its parts) must not run.
        for client in clients.values { client.close(notify: false) }
    }
}
