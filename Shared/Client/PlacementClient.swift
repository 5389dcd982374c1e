import RPC
import RingProtocol

/// The placement service's API: the membership, the ring with its migration
/// plan, and the operator's membership changes.
///
/// Every call is retried within the call timeout while placement cannot be
/// reached (the RPC layer's retry rules). With placement replicated, the
/// client knows every replica and follows the leader (a follower's refusal
/// names it); a membership change refused by a follower goes to the leader.
///
/// Thread-safe: one client serves any number of concurrent tasks.
public final class PlacementClient: Sendable {
    public let callTimeout: Duration
    private let rpc: RPCClient

    public init(context: ClientContext, endpoints: ClusterEndpoints, caller: String, callTimeout: Duration = .seconds(2)) throws(RingstoreError) {
        self.callTimeout = callTimeout
        rpc = try RPCClient.connect(context, endpoints: endpoints.placement, caller: caller)
    }

    /// The placement endpoint calls go to first now: the leader, as far as this client knows.
    public var endpoint: String { rpc.endpoint }

    /// Every placement replica's request endpoint.
    public var endpoints: [String] { rpc.endpoints }

    deinit { rpc.close() }

    /// Ends the connection; calls in flight fail with UNAVAILABLE.
    public func close() { rpc.close() }

    private var options: CallOptions { CallOptions(timeout: callTimeout) }

    /// Every member with its state, weight and epoch.
    public func members() async throws(RingstoreError) -> MemberList {
        let reply = try await rpc.call(PlacementMethods.getMembers, WireGetMembersRequest(), options: options)
        return MemberList(epoch: reply.epoch, members: reply.members.map(Member.init))
    }

    /// The ring with N and the migration plan.
    public func ring() async throws(RingstoreError) -> ClusterRing {
        let reply = try await rpc.call(PlacementMethods.getRing, WireGetRingRequest(), options: options)
        return ClusterRing(epoch: reply.epoch, reply.ring)
    }

    /// Placement's state and the last event of each topic, for the clone pattern.
    public func snapshot() async throws(RingstoreError) -> ClusterSnapshot {
        ClusterSnapshot(try await rpc.call(PlacementMethods.snapshot, WireSnapshotRequest(), options: options))
    }

    /// Adds `address` with `weight`; returns the cluster epoch of the change.
    public func join(_ address: String, weight: Int = 1) async throws(RingstoreError) -> UInt64 {
        let request = WireJoinRequest.with { $0.address = address; $0.weight = UInt32(clamping: weight) }
        return try await rpc.call(PlacementMethods.join, request, options: options).epoch
    }

    /// Starts the graceful leave of `address`; returns the cluster epoch of the change.
    public func leave(_ address: String) async throws(RingstoreError) -> UInt64 {
        try await rpc.call(PlacementMethods.leave, WireLeaveRequest.with { $0.address = address },
                           options: options).epoch
    }

    /// Removes `address` at once (`force`: even while up); returns the cluster epoch of the change.
    public func remove(_ address: String, force: Bool = false) async throws(RingstoreError) -> UInt64 {
        let request = WireRemoveRequest.with {
            $0.address = address
            $0.force = force
        }
        return try await rpc.call(PlacementMethods.remove, request, options: options).epoch
    }
}
