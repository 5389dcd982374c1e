import RPC
import RingProtocol

/// A service's answer to a Health call.
public struct ServiceHealth: Sendable, Equatable {
    /// SERVING, NOT_SERVING or UNKNOWN.
    public let status: String
    /// "placement", "lock" or "node".
    public let service: String
    /// The process's advertised address, `host:port`.
    public let address: String
    public let version: String
    public let uptimeMillis: UInt64
    public let pid: Int
    /// Service-specific figures: keys, bytes, hints_pending, member_state, replicas, default_w, ...
    public let details: [String: String]

    public var isServing: Bool { status == "SERVING" }

    init(_ wire: WireHealthReply) {
        status = switch wire.status {
        case .serving: "SERVING"
        case .notServing: "NOT_SERVING"
        default: "UNKNOWN"
        }
        service = wire.service
        address = wire.address
        version = wire.version
        uptimeMillis = wire.uptimeMillis
        pid = Int(wire.pid)
        details = wire.details
    }
}

/// The answer of one service to a Health call, or why there was none.
public struct HealthResult: Sendable {
    /// "placement", "lock" or "node".
    public let role: String
    /// The endpoint asked.
    public let endpoint: String
    /// The reply, when the service answered.
    public let reply: ServiceHealth?
    /// The failure, when it did not.
    public let error: RingstoreError?
    /// How long the call took.
    public let latency: Duration

    /// Whether the service answered and says it is serving.
    public var isHealthy: Bool { reply?.isServing == true }

    /// For a storage node: its membership as it reports it ("up", "joining",
    /// "removed", ...); `nil` for other services or without a reply.
    public var memberState: String? { role == "node" ? reply?.details["member_state"] : nil }

    /// Healthy, and for a node also an up member of the cluster.
    public var isSettled: Bool { isHealthy && (role != "node" || memberState == "up") }

    /// For a replica of placement or the lock service: "leader" or
    /// "follower" as it says (`details["role"]`; a service that does not
    /// say, a single process, is the leader), "unreachable" without a reply;
    /// `nil` for a node.
    public var replicaRole: String? {
        guard role != "node" else { return nil }
        guard let reply else { return "unreachable" }
        return reply.details["role"].flatMap { $0.isEmpty ? nil : $0 } ?? "leader"
    }

    /// For a replica of placement or the lock service that answered: the
    /// leader's request endpoint as it knows it (`details["leader"]`; a leader
    /// that does not say is itself), empty when it knows none; `nil` otherwise.
    public var leader: String? {
        guard role != "node", let reply else { return nil }
        if let leader = reply.details["leader"] { return leader }
        return replicaRole == "leader" ? endpoint : ""
    }
}

/// Asks every service of the cluster for its health, concurrently.
public enum HealthCheck {
    /// Every placement replica, every lock service replica and the given
    /// nodes, each asked on its own (a follower answers Health too).
    public static func targets(for endpoints: ClusterEndpoints) -> [Service] {
        endpoints.placement.map { .placement($0) } + endpoints.locks.map { .lock($0) } + endpoints.nodes.map { .node($0) }
    }

    /// Whether each replicated service among `results` (placement, the lock
    /// service) has a replica that says it is the leader; true when there are none.
    public static func everyServiceHasALeader(_ results: [HealthResult]) -> Bool {
        let replicated = Set(results.compactMap { $0.replicaRole == nil ? nil : $0.role })
        return replicated.allSatisfy { service in results.contains { $0.role == service && $0.replicaRole == "leader" } }
    }

    /// Calls Health on each service within `timeout`; results keep the services' order.
    public static func run(_ services: [Service], context: ClientContext, caller: String, timeout: Duration) async -> [HealthResult] {
        await withTaskGroup(of: (Int, HealthResult).self) { group in
            for (index, service) in services.enumerated() {
                group.addTask {
                    let clock = ContinuousClock()
                    let start = clock.now
                    let result: Result<ServiceHealth, RingstoreError>
                    do throws(RingstoreError) {
                        let client = try AdminClient(context: context, service: service, caller: caller, callTimeout: timeout)
                        defer { client.close() }
                        result = .success(try await client.health())
                    } catch {
                        result = .failure(error)
                    }
                    return (index, HealthResult(role: service.role, endpoint: service.endpoint, reply: try? result.get(),
                                                error: result.error, latency: clock.now - start))
                }
            }
            var results: [(Int, HealthResult)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}

extension Result {
    /// The error of a failure, nil for a success.
    fileprivate var error: Failure? {
        if case .failure(let error) = self { error } else { nil }
    }
}
