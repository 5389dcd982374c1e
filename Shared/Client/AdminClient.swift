import Foundation
import RPC
import RingProtocol

/// One of the cluster's services, by role and address.
public enum Service: Sendable, Equatable {
    /// The placement service at its request endpoint.
    case placement(String)
    /// The lock service at its request endpoint.
    case lock(String)
    /// A storage node at `host:port` (or a full endpoint).
    case node(String)

    /// "placement", "lock" or "node".
    public var role: String {
        switch self {
        case .placement: "placement"
        case .lock: "lock"
        case .node: "node"
        }
    }

    /// The ZeroMQ endpoint, `tcp://host:port`.
    public var endpoint: String {
        switch self {
        case .placement(let address), .lock(let address), .node(let address): Endpoint.endpoint(for: address)
        }
    }

    var health: RPCMethod<WireHealthRequest, WireHealthReply> {
        switch self {
        case .placement: PlacementMethods.health
        case .lock: LockMethods.health
        case .node: StorageMethods.health
        }
    }

    var echo: RPCMethod<WireEchoRequest, WireEchoReply> {
        switch self {
        case .placement: PlacementMethods.echo
        case .lock: LockMethods.echo
        case .node: StorageMethods.echo
        }
    }
}

/// Operator calls on one service: its health, an echo (the transport's
/// round trip, for benchmarks) and, on a storage node, an anti-entropy pass.
///
/// Thread-safe: one client serves any number of concurrent tasks.
public final class AdminClient: Sendable {
    public let service: Service
    /// How long a call may take (a repair pass has its own timeout).
    public let callTimeout: Duration
    private let rpc: RPCClient

    public init(context: ClientContext, service: Service, caller: String, callTimeout: Duration = .seconds(2)) throws(RingstoreError) {
        self.service = service
        self.callTimeout = callTimeout
        rpc = try RPCClient.connect(context, endpoint: service.endpoint, caller: caller)
    }

    deinit { rpc.close() }

    /// Ends the connection; calls in flight fail with UNAVAILABLE.
    public func close() { rpc.close() }

    /// The service's health: whether it serves, its address, version, uptime and figures.
    public func health() async throws(RingstoreError) -> ServiceHealth {
        ServiceHealth(try await rpc.call(service.health, WireHealthRequest(), options: CallOptions(timeout: callTimeout)))
    }

    /// Sends `payload` and waits for it to come back. Throws INTERNAL when it
    /// comes back changed.
    public func echo(_ payload: [UInt8]) async throws(RingstoreError) {
        let request = WireEchoRequest.with { $0.payload = Data(payload) }
        let reply = try await rpc.call(service.echo, request, options: CallOptions(timeout: callTimeout))
        guard reply.payload == request.payload else {
            throw .internalError("echo from \(service.endpoint) came back with \(reply.payload.count) bytes, not the \(payload.count) sent")
        }
    }

    /// Runs a full anti-entropy pass on this storage node now and waits up to
    /// `timeout` for it. A node that does not answer its health within the call
    /// timeout fails at once, not after `timeout`.
    public func repair(timeout: Duration) async throws(RingstoreError) -> RepairReport {
        guard case .node(let address) = service else { throw .invalidArgument("repair runs on storage nodes, not on \(service.role)") }
        _ = try await health()
        // One attempt may take the whole pass; retries only cover a connection that is not there yet.
        let reply = try await rpc.call(StorageMethods.repair, WireRepairRequest(), options: CallOptions(timeout: timeout, maxAttempts: 1))
        return RepairReport(node: Endpoint.address(of: address), reply)
    }
}
