import ControlPlane
import Etcd
import Foundation
import RingProtocol

/// Where placement's durable state goes: the embedded file (`PlacementStore`)
/// or etcd (`EtcdPlacementStore`), under the same state machine.
public protocol PlacementStateStore: AnyObject {
    /// The saved state, or nil for a new cluster.
    func load() throws -> WirePlacementState?
    /// Saves `state`; returns once it is durable.
    func save(_ state: WirePlacementState) throws
}

extension PlacementStore: PlacementStateStore {}

/// Placement's state in etcd, for one leader term: one key holding the same
/// protobuf the embedded store writes, replaced by a transaction that holds
/// only while this replica still leads.
public final class EtcdPlacementStore: PlacementStateStore {
    public let key: String
    private let writes: GuardedWrites

    /// The state under `prefix` (e.g. `/ringstore/placement`), written in `term`.
    public init(client: EtcdClient, prefix: String, term: LeaderTerm) {
        key = prefix + "/state"
        writes = GuardedWrites(client: client, term: term)
    }

    public func load() throws -> WirePlacementState? {
        guard let kv = try writes.client.get(key: key).kv else { return nil }
        do {
            return try WirePlacementState(serializedBytes: kv.value)
        } catch {
            throw StoreError("etcd key \(key) does not hold placement state (\(error)); delete it to start a new cluster")
        }
    }

    /// Throws `ReplicatedWriteError` when the state was not (or may not have been) written.
    public func save(_ state: WirePlacementState) throws {
        let bytes: [UInt8] = try state.serializedBytes()
        try writes.commit([.put(key: key, value: bytes, lease: 0)])
    }
}
