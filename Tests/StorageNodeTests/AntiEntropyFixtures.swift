import PlacementService
import RPC
import RingProtocol
import Synchronization
@testable import StorageNode
import TestKit

/// The `anti_entropy` events placement publishes, collected from a live subscription.
final class RepairEvents: Sendable {
    private let subscription: EventSubscription
    private let received = RepairList()

    /// Subscribes and makes sure the subscription is live (placement publishes probe reports until one arrives).
    init(_ cluster: InProcessCluster) async throws {
        subscription = try EventSubscription(context: cluster.context, endpoints: [cluster.placementEvents], topics: ["migration"])
        let stream = subscription.events
        let received = self.received
        Task {
            for await event in stream where event.event.type == "anti_entropy" {
                if case .repair(let details)? = event.event.details { received.append(details) }
            }
        }
        let placement = try RPCClient(context: cluster.context, endpoint: cluster.placementEndpoint, caller: "test")
        defer { placement.close() }
        let probe = WireReportRepairRequest.with { $0.details.node = "probe"; $0.details.reason = "probe" }
        try await waitUntil("the event subscription to be live", interval: .milliseconds(50)) {
            _ = try await placement.call(PlacementMethods.reportRepair, probe)
            return received.all.contains { $0.node == "probe" }
        }
    }

    var all: [WireRepairDetails] { received.all }

    func close() { subscription.close() }
}

final class RepairList: Sendable {
    private let list = Mutex<[WireRepairDetails]>([])
    func append(_ details: WireRepairDetails) { list.withLock { $0.append(details) } }
    var all: [WireRepairDetails] { list.withLock { $0 } }
}

extension InProcessCluster {
    /// Node `index`'s anti-entropy pacer (read on its reactor thread).
    func pacer(_ index: Int) async -> RatePacer {
        await withCheckedContinuation { continuation in
            nodes[index]?.withOwner(as: StorageNodeServer.self) { continuation.resume(returning: $0.antiEntropy.pacer) }
        }
    }

    /// What node `index` knows of each member's state (read on its reactor thread).
    func memberStates(_ index: Int) async -> [String: WireMemberState] {
        guard let node = nodes[index] else { return [:] }
        return await withCheckedContinuation { continuation in
            node.withOwner(as: StorageNodeServer.self) { continuation.resume(returning: $0.placement.memberStates) }
        }
    }
}
