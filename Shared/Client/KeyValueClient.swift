import RPC
import Ring
import RingProtocol
import Synchronization

/// The data API of a Ringstore cluster: put, get and delete of byte keys and
/// values, each sent straight to a replica of its key.
///
/// The client follows the ring placement serves: it fetches it on first use,
/// refreshes it in the background when it is older than
/// ``Configuration/ringMaxAge`` or after a routing failure, and falls back to
/// ``ClusterEndpoints/nodes`` while placement cannot be reached. A request goes
/// to the first candidate of ``RingRouter/candidates(forKey:unreachable:limit:)``
/// and moves on to the next one only when that is safe: for put and delete
/// (not idempotent: a second attempt would write a second, newer version)
/// only when the request never left this process; for get also when the node
/// timed out or answered UNAVAILABLE. A node that could not be reached is
/// tried last until a background health probe finds it answering again.
///
/// Session causality: the client remembers the highest version timestamp it
/// has seen (from its puts, deletes and gets) and sends it with every write;
/// the coordinator, whichever node it is, stamps the write after it. So a
/// client's write is always ordered after every version it saw, even when
/// two of its writes go through different nodes within one millisecond.
///
/// Thread-safe: one client serves any number of concurrent tasks, with many
/// requests in flight on one connection per node.
public final class KeyValueClient: Sendable {
    /// Timeouts and routing limits.
    public struct Configuration: Sendable {
        /// How long one node may take to answer one request. A request may try up
        /// to ``maxNodeAttempts`` nodes, each with this timeout.
        public var timeout: Duration
        /// The ring is refreshed in the background once it is older than this.
        public var ringMaxAge: Duration
        /// The most nodes one request tries.
        public var maxNodeAttempts: Int

        public init(timeout: Duration = .seconds(2), ringMaxAge: Duration = .seconds(2), maxNodeAttempts: Int = 3) {
            self.timeout = timeout
            self.ringMaxAge = ringMaxAge
            self.maxNodeAttempts = max(1, maxNodeAttempts)
        }
    }

    private struct State {
        var router: RingRouter?
        var fetchedAt: ContinuousClock.Instant?
        var refresh: Task<Void, Never>?
        /// Set after a routing failure: refresh soon, whatever the ring's age.
        var refreshWanted = false
        var clients: [String: RPCClient] = [:]
        var unreachable: Set<String> = []
        var closed = false
        /// The highest version timestamp this client has seen (session causality).
        var seenTimestamp: UInt64 = 0
    }

    /// The shortest time between two ring fetches asked for by routing failures.
    private static let minimumRefreshInterval: Duration = .milliseconds(200)

    private let context: ClientContext
    private let endpoints: ClusterEndpoints
    private let caller: String
    private let configuration: Configuration
    private let placement: RPCClient
    private let state = Mutex(State())
    private let clock = ContinuousClock()

    /// A client of the cluster at `endpoints`, identifying itself as `caller`.
    /// Connects lazily; throws only for a malformed placement endpoint.
    public init(context: ClientContext, endpoints: ClusterEndpoints, caller: String,
                configuration: Configuration = Configuration()) throws(RingstoreError) {
        self.context = context
        self.endpoints = endpoints
        self.caller = caller
        self.configuration = configuration
        placement = try RPCClient.connect(context, endpoints: endpoints.placement, caller: caller)
    }

    deinit { close() }

    /// Ends every connection; requests in flight fail with UNAVAILABLE. Idempotent.
    public func close() {
        let (clients, refresh) = state.withLock { state in
            state.closed = true
            defer { state.clients = [:]; state.refresh = nil }
            return (Array(state.clients.values), state.refresh)
        }
        refresh?.cancel()
        for client in clients { client.close() }
        placement.close()
    }

    // MARK: - Data API

    /// Writes `value` under `key` and returns the new version. `ifVersion` makes
    /// the put conditional on the key's newest version being exactly that one,
    /// `ifAbsent` on the key being absent or deleted (FAILED_PRECONDITION otherwise).
    /// A `fence` (a lock name and the token the lock service granted) makes the
    /// write refused with FAILED_PRECONDITION when a replica has seen a higher
    /// token for that lock on this key: a holder whose lease ran out cannot
    /// overwrite its successor's writes.
    public func put(key: [UInt8], value: [UInt8], quorum: Quorum = Quorum(),
                    ifVersion: Version? = nil, ifAbsent: Bool = false,
                    fence: (name: String, token: UInt64)? = nil) async throws(RingstoreError) -> WriteResult {
        var request = WirePutRequest()
        request.key = .init(key)
        request.value = .init(value)
        request.quorum = quorum.wire
        if let ifVersion { request.ifVersion = ifVersion.wire }
        request.ifAbsent = ifAbsent
        if let fence {
            request.fence = WireFence.with {
                $0.name = fence.name
                $0.token = fence.token
            }
        }
        request.seenTimestamp = seenTimestamp
        let reply = try await route(key: key, idempotent: false) { client, options throws(RPCError) in
            try await client.call(StorageMethods.put, request, options: options)
        }
        saw(reply.version)
        return WriteResult(version: Version(reply.version), acks: Int(reply.acks))
    }

    /// Reads `key` at quorum R: `found` is false for an absent or deleted key.
    public func get(key: [UInt8], quorum: Quorum = Quorum()) async throws(RingstoreError) -> ReadResult {
        var request = WireGetRequest()
        request.key = .init(key)
        request.quorum = quorum.wire
        let reply = try await route(key: key, idempotent: true) { client, options throws(RPCError) in
            try await client.call(StorageMethods.get, request, options: options)
        }
        if reply.found { saw(reply.version) }
        return ReadResult(found: reply.found, value: Array(reply.value), version: Version(reply.version), replies: Int(reply.replies))
    }

    /// Deletes `key` (writes a tombstone) and returns the tombstone's version.
    public func delete(key: [UInt8], quorum: Quorum = Quorum()) async throws(RingstoreError) -> WriteResult {
        var request = WireDeleteRequest()
        request.key = .init(key)
        request.quorum = quorum.wire
        request.seenTimestamp = seenTimestamp
        let reply = try await route(key: key, idempotent: false) { client, options throws(RPCError) in
            try await client.call(StorageMethods.delete, request, options: options)
        }
        saw(reply.version)
        return WriteResult(version: Version(reply.version), acks: Int(reply.acks))
    }

    /// The highest version timestamp this client has seen; its next write is stamped after it.
    public var seenTimestamp: UInt64 { state.withLock { $0.seenTimestamp } }

    /// Remembers a version this client saw (session causality).
    private func saw(_ version: WireVersion) {
        state.withLock { $0.seenTimestamp = max($0.seenTimestamp, version.timestamp) }
    }

    /// Fetches the ring from placement now and waits for it; returns whether
    /// placement answered. Requests do this by themselves; call it to take the
    /// first fetch out of a measurement.
    @discardableResult
    public func refreshRing() async -> Bool {
        await fetchRing()
    }

    /// The router requests use now, if any; for diagnostics.
    public var currentRouter: RingRouter? { state.withLock { $0.router } }

    // MARK: - Routing

    private func route<Reply: Sendable>(
        key: [UInt8], idempotent: Bool,
        _ send: (RPCClient, CallOptions) async throws(RPCError) -> Reply
    ) async throws(RPCError) -> Reply {
        guard !key.isEmpty else { throw .invalidArgument("empty key") }
        let router = try await currentRouterRefreshingIfStale()
        let unreachable = state.withLock { $0.unreachable }
        let candidates: [String]
        do {
            candidates = try router.candidates(forKey: key, unreachable: unreachable, limit: configuration.maxNodeAttempts)
        } catch {
            throw .invalidArgument("\(error)")
        }
        let options = CallOptions(timeout: configuration.timeout, maxAttempts: 1)
        var lastError = RPCError.unavailable("no storage node to ask")
        for address in candidates {
            if Task.isCancelled { throw .cancelled("request cancelled") }
            guard let client = client(for: address) else {
                if state.withLock({ $0.closed }) { throw .unavailable("the client is closed") }
                lastError = .unavailable("malformed node address \(address)")
                continue
            }
            do {
                let reply = try await send(client, options)
                if unreachable.contains(address) { markReachable(address) }
                return reply
            } catch {
                lastError = error
                if error.neverSent {
                    markUnreachable(address)
                    continue
                }
                // Too few replicas answered: the ring may have changed.
                if error.code == .unavailable { wantRefresh() }
                guard idempotent else { throw error }
                switch error.code {
                case .deadlineExceeded: markUnreachable(address)
                case .unavailable: break
                default: throw error
                }
            }
        }
        throw lastError
    }

    /// The cached router, starting a background refresh when it is stale; waits
    /// for the first fetch when there is none yet.
    private func currentRouterRefreshingIfStale() async throws(RPCError) -> RingRouter {
        let now = clock.now
        let (router, firstFetch): (RingRouter?, Task<Void, Never>?) = state.withLock { state in
            guard !state.closed else { return (nil, nil) }
            if let router = state.router {
                if state.refresh == nil, let fetchedAt = state.fetchedAt {
                    let age = now - fetchedAt
                    if age >= configuration.ringMaxAge || (state.refreshWanted && age >= Self.minimumRefreshInterval) {
                        state.refresh = startRefresh()
                    }
                }
                return (router, nil)
            }
            if state.refresh == nil { state.refresh = startRefresh() }
            return (nil, state.refresh)
        }
        if let router { return router }
        guard let firstFetch else { throw .unavailable("the client is closed") }
        await firstFetch.value
        guard let router = state.withLock({ $0.router }) else {
            throw .unavailable("no ring from placement at \(ClusterEndpoints.describe(endpoints.placement)) and no usable node addresses")
        }
        return router
    }

    /// Called with the state locked.
    private func startRefresh() -> Task<Void, Never> {
        Task { [self] in
            _ = await fetchRing()
            await probeUnreachable()
            state.withLock { $0.refresh = nil }
        }
    }

    /// Fetches the ring; without an answer keeps the ring it has, or falls back to
    /// the static node list. Returns whether placement answered with a usable ring.
    private func fetchRing() async -> Bool {
        let options = CallOptions(timeout: min(configuration.timeout, .seconds(1)), maxAttempts: 2)
        var fetched: RingRouter?
        if let reply = await placement.result(PlacementMethods.getRing, WireGetRingRequest(), options: options).success {
            fetched = try? RingRouter(ringInfo: reply.ring, epoch: reply.epoch)
        }
        let now = clock.now
        state.withLock { state in
            state.fetchedAt = now
            state.refreshWanted = false
            if let fetched {
                // Keep a newer ring if a concurrent fetch brought one.
                if state.router == nil || !state.router!.isFromPlacement || state.router!.epoch <= fetched.epoch {
                    state.router = fetched
                }
            } else if state.router == nil {
                state.router = try? RingRouter(nodes: endpoints.nodes)
            }
        }
        return fetched != nil
    }

    /// Asks every node marked unreachable for its health; the ones that answer are tried first again.
    private func probeUnreachable() async {
        let addresses = state.withLock { $0.unreachable }
        guard !addresses.isEmpty else { return }
        let options = CallOptions(timeout: min(configuration.timeout, .seconds(1)), maxAttempts: 1)
        await withTaskGroup(of: Void.self) { group in
            for address in addresses {
                guard let client = client(for: address) else { continue }
                group.addTask { [self] in
                    if await client.result(StorageMethods.health, WireHealthRequest(), options: options).success != nil {
                        markReachable(address)
                    }
                }
            }
        }
    }

    private func markUnreachable(_ address: String) {
        state.withLock { state in
            state.unreachable.insert(address)
            state.refreshWanted = true
        }
    }

    private func markReachable(_ address: String) {
        _ = state.withLock { $0.unreachable.remove(address) }
    }

    private func wantRefresh() {
        state.withLock { $0.refreshWanted = true }
    }

    /// The cached connection to a node, made on first use; nil once closed or for a malformed address.
    private func client(for address: String) -> RPCClient? {
        state.withLock { state in
            guard !state.closed else { return nil }
            if let client = state.clients[address] { return client }
            guard let client = try? RPCClient.connect(context, endpoint: address, caller: caller) else { return nil }
            state.clients[address] = client
            return client
        }
    }
}

extension Result {
    /// The value of a success, nil for a failure.
    fileprivate var success: Success? {
        if case .success(let value) = self { value } else { nil }
    }
}
