import Logging
import RPC
import ZeroMQ

/// One RPC client per peer node, created on first use and kept.
final class PeerClients {
    private let context: ZMQContext
    private let caller: String
    private let logger: Logger
    private var clients: [String: RPCClient] = [:]

    init(context: ZMQContext, caller: String, logger: Logger) {
        self.context = context
        self.caller = caller
        self.logger = logger
    }

    /// The client for `address` (`host:port`), or `nil` if it cannot be created.
    func client(for address: String) -> RPCClient? {
        if let client = clients[address] { return client }
        do {
            let client = try RPCClient(context: context, endpoint: "tcp://" + address, caller: caller, logger: logger)
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
        for client in clients.values { client.close() }
    }
}
