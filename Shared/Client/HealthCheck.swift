import RPC
import RingProtocol
import ZeroMQ

/// The answer of one service to a Health call, or why there was none.
public struct HealthResult: Sendable {
    /// "placement", "lock" or "node".
    public let role: String
    /// The endpoint asked.
    public let endpoint: String
    /// The reply, when the service answered.
    public let reply: WireHealthReply?
    /// The failure, when it did not.
    public let error: RPCError?
    /// How long the call took.
    public let latency: Duration

    /// Whether the service answered and says it is serving.
    public var isHealthy: Bool { reply?.status == .serving }

    /// For a storage node: its membership as it reports it ("up", "joining",
    /// "removed", ...); `nil` for other services or without a reply.
    public var memberState: String? { role == "node" ? reply?.details["member_state"] : nil }

    /// Healthy, and for a node also an up member of the cluster.
    public var isSettled: Bool { isHealthy && (role != "node" || memberState == "up") }
}

/// Asks every service of the cluster for its health, concurrently.
public enum HealthCheck {
    /// One target of a health sweep.
    public struct Target: Sendable {
        public let role: String
        public let endpoint: String
        public let method: RPCMethod<WireHealthRequest, WireHealthReply>

        public init(role: String, endpoint: String, method: RPCMethod<WireHealthRequest, WireHealthReply>) {
            self.role = role
            self.endpoint = endpoint
            self.method = method
        }
    }

    /// The placement service, the lock service and the given nodes.
    public static func targets(for endpoints: ClusterEndpoints) -> [Target] {
        [Target(role: "placement", endpoint: endpoints.placement, method: PlacementMethods.health),
         Target(role: "lock", endpoint: endpoints.locks, method: LockMethods.health)]
            + endpoints.nodes.map { Target(role: "node", endpoint: ClusterEndpoints.normalize($0), method: StorageMethods.health) }
    }

    /// Calls Health on each target within `timeout`; results keep the targets' order.
    public static func run(_ targets: [Target], context: ZMQContext, caller: String, timeout: Duration) async -> [HealthResult] {
        await withTaskGroup(of: (Int, HealthResult).self) { group in
            for (index, target) in targets.enumerated() {
                group.addTask {
                    let clock = ContinuousClock()
                    let start = clock.now
                    do {
                        let client = try RPCClient(context: context, endpoint: target.endpoint, caller: caller)
                        defer { client.close() }
                        let reply = try await client.call(target.method, WireHealthRequest(), options: CallOptions(timeout: timeout))
                        return (index, HealthResult(role: target.role, endpoint: target.endpoint, reply: reply, error: nil, latency: clock.now - start))
                    } catch let error as RPCError {
                        return (index, HealthResult(role: target.role, endpoint: target.endpoint, reply: nil, error: error, latency: clock.now - start))
                    } catch {
                        return (index, HealthResult(role: target.role, endpoint: target.endpoint, reply: nil,
                                                    error: .invalidArgument("\(error)"), latency: clock.now - start))
                    }
                }
            }
            var results: [(Int, HealthResult)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}
