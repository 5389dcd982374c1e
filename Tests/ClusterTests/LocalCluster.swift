import Foundation
import RPC
import RingProtocol
import TestKit
import ZeroMQ

/// Placement, the lock service and storage nodes as real processes on free
/// loopback ports, for end-to-end tests.
final class LocalCluster: @unchecked Sendable {
    let placementEndpoint = FreePort.endpoint()
    let placementEvents = FreePort.endpoint()
    let lockEndpoint = FreePort.endpoint()
    let lockEvents = FreePort.endpoint()
    let nodeEndpoints: [String]
    private(set) var placement: ServiceProcess!
    private(set) var lock: ServiceProcess!
    private(set) var nodes: [ServiceProcess] = []
    let context: ZMQContext

    init(nodes count: Int) throws {
        nodeEndpoints = (0..<count).map { _ in FreePort.endpoint() }
        context = try ZMQContext()
    }

    /// Starts every process and waits until each answers Health.
    func start() async throws {
        placement = try ServiceProcess("ringstore-placement", ["--listen", placementEndpoint, "--publish", placementEvents])
        lock = try ServiceProcess("ringstore-lock", ["--listen", lockEndpoint, "--publish", lockEvents])
        nodes = try nodeEndpoints.map { try ServiceProcess("ringstore-node", ["--listen", $0]) }
        try await waitHealthy(placementEndpoint, PlacementMethods.health)
        try await waitHealthy(lockEndpoint, LockMethods.health)
        for endpoint in nodeEndpoints { try await waitHealthy(endpoint, StorageMethods.health) }
    }

    func waitHealthy(_ endpoint: String, _ method: RPCMethod<WireHealthRequest, WireHealthReply>) async throws {
        let client = try RPCClient(context: context, endpoint: endpoint, caller: "cluster-test")
        defer { client.close() }
        try await waitUntil("\(endpoint) to answer Health", timeout: .seconds(20)) {
            (try? await client.call(method, WireHealthRequest(), options: CallOptions(timeout: .milliseconds(500))))?.status == .serving
        }
    }

    /// The `ringctl` options that point at this cluster.
    var ringctlOptions: [String] {
        ["--placement", placementEndpoint, "--locks", lockEndpoint,
         "--nodes", nodeEndpoints.map { $0.replacingOccurrences(of: "tcp://", with: "") }.joined(separator: ",")]
    }

    /// Stops everything with SIGTERM and returns the exit statuses.
    @discardableResult
    func stop() async throws -> [Int32] {
        var statuses: [Int32] = []
        for process in nodes + [lock, placement].compactMap({ $0 }) {
            statuses.append(try await process.stop())
        }
        return statuses
    }
}
