import RPC
import RingProtocol
import Synchronization

/// The calls `ringctl backup` and `ringctl restore` make: placement's and
/// the lock service's state, raising the lock service's token counter, and
/// storage nodes' snapshots (made, read in chunks, released). Every call
/// needs an admin key on a secured cluster.
///
/// Thread-safe: one client serves any number of concurrent tasks, with one
/// connection per service and node.
public final class BackupClient: Sendable {
    /// How long a call may take (making a snapshot has its own timeout).
    public let callTimeout: Duration
    private let context: ClientContext
    private let caller: String
    private let placement: RPCClient
    private let locks: RPCClient
    private let nodes = Mutex<(clients: [String: RPCClient], closed: Bool)>(([:], false))

    public init(context: ClientContext, endpoints: ClusterEndpoints, caller: String, callTimeout: Duration = .seconds(2)) throws(RingstoreError) {
        self.context = context
        self.caller = caller
        self.callTimeout = callTimeout
        placement = try RPCClient.connect(context, endpoints: endpoints.placement, caller: caller)
        do {
            locks = try RPCClient.connect(context, endpoints: endpoints.locks, caller: caller)
        } catch {
            placement.close()
            throw error
        }
    }

    deinit { close() }

    /// Ends every connection; calls in flight fail with UNAVAILABLE. Idempotent.
    public func close() {
        let clients = nodes.withLock { state in
            state.closed = true
            defer { state.clients = [:] }
            return Array(state.clients.values)
        }
        for client in clients { client.close() }
        placement.close()
        locks.close()
    }

    private var options: CallOptions { CallOptions(timeout: callTimeout) }

    // MARK: Placement and the lock service

    /// Placement's persisted state and the ring with its settings.
    public func placementState() async throws(RingstoreError) -> PlacementExport {
        try PlacementExport(try await placement.call(PlacementMethods.exportState, WirePlacementExportRequest(), options: options))
    }

    /// Every lock the lock service remembers, and its token counter.
    public func lockState() async throws(RingstoreError) -> LockExport {
        try LockExport(try await locks.call(LockMethods.exportState, WireLockExportRequest(), options: options))
    }

    /// Raises the lock service's token counter to at least `token` (never
    /// lowers it) and returns the counter; answered once it is durable.
    public func raiseLockTokens(atLeast token: UInt64) async throws(RingstoreError) -> UInt64 {
        try await locks.call(LockMethods.importTokens, WireLockImportTokensRequest.with { $0.lastToken = token }, options: options).lastToken
    }

    // MARK: Node snapshots

    /// Has `node` (`host:port`) make a consistent copy of its database and waits
    /// up to `timeout` for it. A node that does not answer its health within the
    /// call timeout fails at once, not after `timeout`. Never retried: each call
    /// makes a copy.
    public func startSnapshot(on node: String, timeout: Duration) async throws(RingstoreError) -> NodeSnapshot {
        let client = try client(for: node)
        _ = try await client.call(StorageMethods.health, WireHealthRequest(), options: options)
        let reply = try await client.call(StorageMethods.backup, WireBackupRequest(), options: CallOptions(timeout: timeout, maxAttempts: 1))
        return NodeSnapshot(node: node, reply)
    }

    /// Up to `maxBytes` of `snapshot` from `offset`; fewer only at its end.
    public func chunk(of snapshot: NodeSnapshot, offset: Int, maxBytes: Int) async throws(RingstoreError) -> [UInt8] {
        let request = WireBackupChunkRequest.with {
            $0.id = snapshot.id
            $0.offset = UInt64(max(0, offset))
            $0.maxBytes = UInt32(clamping: maxBytes)
        }
        return Array(try await client(for: snapshot.node).call(StorageMethods.backupChunk, request, options: options).data)
    }

    /// Deletes `snapshot` on its node.
    public func release(_ snapshot: NodeSnapshot) async throws(RingstoreError) {
        _ = try await client(for: snapshot.node).call(StorageMethods.backupRelease, WireBackupReleaseRequest.with { $0.id = snapshot.id },
                                                      options: options)
    }

    private func client(for node: String) throws(RingstoreError) -> RPCClient {
        let existing = nodes.withLock { state -> (RPCClient?, Bool) in (state.clients[node], state.closed) }
        if existing.1 { throw .unavailable("the backup client is closed") }
        if let client = existing.0 { return client }
        let made = try RPCClient.connect(context, endpoint: node, caller: caller)
        let (client, spare) = nodes.withLock { state -> (RPCClient?, RPCClient?) in
            if state.closed { return (nil, made) }
            if let other = state.clients[node] { return (other, made) }
            state.clients[node] = made
            return (made, nil)
        }
        spare?.close()
        guard let client else { throw .unavailable("the backup client is closed") }
        return client
    }
}
