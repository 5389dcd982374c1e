import Basics
import RPC
import RingProtocol

/// A lease granted by the lock service.
public struct LockGrant: Sendable, Equatable {
    public let name: String
    public let owner: String
    /// The fencing token: strictly increasing per lock name. Pass it with
    /// every write the lock protects (`put --fence NAME:TOKEN`).
    public let token: UInt64
    public let ttl: Duration
    /// When the service will expire the lease unless renewed, microseconds
    /// since the Unix epoch, on the service's wall clock.
    public let expiresUnixMicros: Int64
    /// A conservative local deadline: the request that produced this grant was
    /// sent before the lease started, so the lease lasts at least until
    /// `sentAt + ttl` on this process's monotonic clock.
    public let validUntil: ContinuousClock.Instant

    init(wire: WireLockGrant, sentAt: ContinuousClock.Instant) {
        name = wire.name
        owner = wire.owner
        token = wire.token
        ttl = .milliseconds(Int64(min(wire.ttlMillis, 1 << 40)))
        expiresUnixMicros = wire.expiresUnixMicros
        validUntil = sentAt + ttl
    }

    /// When the request that produced this grant was sent.
    public var sentAt: ContinuousClock.Instant { validUntil - ttl }
}

/// The lock service's API: acquire, renew, release, status and list, as one
/// owner.
///
/// Acquire is not retried blindly (a retry would queue twice): each acquire
/// carries an attempt id, and only when the leader went away with it in
/// flight (the connection dropped, or a follower refused it) is the same
/// request, same owner and attempt, sent again to the new leader, which
/// answers it as the same acquire (the grant it made, or the waiter's place
/// in the queue). Renew is retried on UNAVAILABLE within the call timeout (it
/// is idempotent); release is not (a repeat after a lost reply would find the
/// token stale). An acquire the caller gives up on (its task is cancelled, or
/// no answer came before its deadline) is cancelled at the service, so it
/// leaves the queue rather than being granted to nobody. For a lease kept
/// alive in the background, use ``hold(_:ttl:wait:renewEvery:onLost:)``.
///
/// With the lock service replicated, the client knows every replica and
/// follows the leader.
///
/// An owner is one client session: give each process (or each independent
/// user of the service) an owner id of its own, e.g. `user@host/pid`.
///
/// Thread-safe: one client serves any number of concurrent tasks.
public final class LockClient: Sendable {
    /// The owner id sent with every request; renew and release must come from
    /// the owner that acquired.
    public let owner: String
    /// How long a call may take (an acquire gets its wait on top).
    public let callTimeout: Duration
    private let rpc: RPCClient

    /// A client of the lock service at `endpoints` (its replicas' request
    /// endpoints, or the one of a single service), acting as `owner`.
    public init(context: ClientContext, endpoints: [String], owner: String, caller: String? = nil,
                callTimeout: Duration = .seconds(2)) throws(RingstoreError) {
        self.owner = owner
        self.callTimeout = callTimeout
        rpc = try RPCClient.connect(context, endpoints: endpoints, caller: caller ?? "lock-client \(owner)")
    }

    /// A client of the lock service at `endpoint` (a comma-separated list for
    /// several replicas), acting as `owner`.
    public convenience init(context: ClientContext, endpoint: String, owner: String, caller: String? = nil,
                            callTimeout: Duration = .seconds(2)) throws(RingstoreError) {
        try self.init(context: context, endpoints: ClusterEndpoints.parse(endpoint), owner: owner, caller: caller, callTimeout: callTimeout)
    }

    /// A client of the cluster's lock service (`endpoints.locks`).
    public convenience init(context: ClientContext, endpoints: ClusterEndpoints, owner: String, caller: String? = nil,
                            callTimeout: Duration = .seconds(2)) throws(RingstoreError) {
        try self.init(context: context, endpoints: endpoints.locks, owner: owner, caller: caller, callTimeout: callTimeout)
    }

    deinit { rpc.close() }

    /// The lock service endpoint calls go to first now: the leader, as far as this client knows.
    public var endpoint: String { rpc.endpoint }

    /// Every lock service replica's request endpoint.
    public var endpoints: [String] { rpc.endpoints }

    /// Ends the connection; calls in flight fail with UNAVAILABLE.
    public func close() { rpc.close() }

    /// Acquires `name` with a lease of `ttl`. With `wait` zero it only tries
    /// (FAILED_PRECONDITION when held); otherwise the service queues the
    /// request FIFO and answers with the grant the moment the lock passes on,
    /// or DEADLINE_EXCEEDED when `wait` runs out. Re-acquiring a lock this
    /// owner holds is refused (FAILED_PRECONDITION).
    ///
    /// When the lock service's leader goes away with the request in flight
    /// (UNAVAILABLE: the connection dropped, or no leader answered), the same
    /// request is sent again, with the wait that is left, until `wait` plus
    /// the call timeout are spent.
    ///
    /// When the calling task is cancelled (CANCELLED) or no answer comes
    /// before the call's deadline (DEADLINE_EXCEEDED), or it gives up after
    /// the request may have reached a leader, the acquire is cancelled at the
    /// service before this throws: it leaves the queue, or, if it was granted
    /// meanwhile, the unseen grant is released. The error message says which
    /// ("left the queue", "released token T").
    public func acquire(_ name: String, ttl: Duration, wait: Duration = .zero) async throws(RPCError) -> LockGrant {
        let attempt = UInt64.random(in: 1...UInt64.max)
        let clock = ContinuousClock()
        // The lease starts after the first send, whichever leader grants it:
        // the local deadline counts from there.
        let firstSent = clock.now
        let waitEnd = firstSent + max(wait, .zero)
        let deadline = waitEnd + callTimeout
        var pause = Duration.milliseconds(20)
        var mayBeQueued = false
        while true {
            let request = WireLockAcquireRequest.with {
                $0.name = name
                $0.owner = owner
                $0.ttlMillis = Self.millis(ttl)
                // What is left of the wait (at least a millisecond: still a wait, not a try).
                $0.waitMillis = wait > .zero ? Self.millis(max(waitEnd - clock.now, .milliseconds(1))) : 0
                $0.attempt = attempt
            }
            let error: RPCError
            do {
                let reply = try await rpc.call(LockMethods.acquire, request, options: CallOptions(timeout: deadline - clock.now))
                return LockGrant(wire: reply.grant, sentAt: firstSent)
            } catch let failure {
                error = failure
            }
            // This client was closed (the request dies with its connection): nothing more to do.
            if rpc.isClosed { throw error }
            if !error.neverSent && !error.notLeader { mayBeQueued = true }
            // The leader went away (or none answered): the same acquire again, while there is time.
            if error.code == .unavailable, clock.now + pause < deadline {
                do {
                    try await Task.sleep(for: pause * Double.random(in: 0.5...1.0))
                    pause = min(pause * 2, .milliseconds(500))
                    continue
                } catch {
                    throw await givenUp(name, attempt: attempt, error: .cancelled("acquire of \(name) cancelled"))
                }
            }
            // The service answers DEADLINE_EXCEEDED itself when a wait runs out
            // (then there is nothing left to cancel), but a request that sat
            // unread for a while is still queued there when this side gives up.
            if error.code == .cancelled || error.code == .deadlineExceeded || (error.code == .unavailable && mayBeQueued) {
                throw await givenUp(name, attempt: attempt, error: error)
            }
            throw error
        }
    }

    /// Cancels acquire `attempt` at the service; returns `error` with what the
    /// cancel did, for the caller to throw.
    private func givenUp(_ name: String, attempt: UInt64, error: RPCError) async -> RPCError {
        guard let outcome = await abandon(name, attempt: attempt) else { return error }
        return RPCError(error.code, "\(error.message); \(outcome)", neverSent: error.neverSent, notLeader: error.notLeader, leader: error.leader)
    }

    /// Cancels acquire `attempt` of `name` at the service; says what happened,
    /// or nil when there was nothing to cancel.
    private func abandon(_ name: String, attempt: UInt64) async -> String? {
        let request = WireLockCancelRequest.with {
            $0.name = name
            $0.owner = owner
            $0.attempt = attempt
        }
        let rpc = rpc
        let options = CallOptions(timeout: callTimeout)
        // Detached: when the caller's task was cancelled, a call made from it
        // would be cancelled before it is sent.
        let result = await Task.detached { await rpc.result(LockMethods.cancel, request, options: options) }.value
        switch result {
        case .success(let reply):
            if reply.dequeued { return "left the queue" }
            if reply.releasedToken != 0 { return "released token \(reply.releasedToken), granted as the wait was given up" }
            return nil
        case .failure(let error):
            return "could not cancel the acquire at the service, it may stay queued until its wait runs out (\(error))"
        }
    }

    /// Extends the lease of `name` held with `token` to `ttl` (nil: its ttl) from now.
    public func renew(_ name: String, token: UInt64, ttl: Duration? = nil, timeout: Duration? = nil) async throws(RPCError) -> LockGrant {
        let request = WireLockRenewRequest.with {
            $0.name = name
            $0.owner = owner
            $0.token = token
            $0.ttlMillis = ttl.map(Self.millis) ?? 0
        }
        let sent = ContinuousClock.now
        let reply = try await rpc.call(LockMethods.renew, request, options: CallOptions(timeout: timeout ?? callTimeout))
        return LockGrant(wire: reply.grant, sentAt: sent)
    }

    /// Frees `name`, held with `token`; the next waiter gets it.
    public func release(_ name: String, token: UInt64) async throws(RPCError) {
        let request = WireLockReleaseRequest.with {
            $0.name = name
            $0.owner = owner
            $0.token = token
        }
        _ = try await rpc.call(LockMethods.release, request, options: CallOptions(timeout: callTimeout))
    }

    /// The holder, waiters and last token of `name` (no holder: free).
    public func status(_ name: String) async throws(RingstoreError) -> LockInfo {
        LockInfo(try await rpc.call(LockMethods.status, WireLockStatusRequest.with { $0.name = name },
                                    options: CallOptions(timeout: callTimeout)).lock)
    }

    /// Every lock held or waited for.
    public func list() async throws(RingstoreError) -> [LockInfo] {
        try await rpc.call(LockMethods.list, WireLockListRequest(), options: CallOptions(timeout: callTimeout)).locks.map(LockInfo.init)
    }

    /// The clone pattern's snapshot of the `lock` topic.
    public func snapshot() async throws(RingstoreError) -> LockSnapshot {
        LockSnapshot(try await rpc.call(LockMethods.snapshot, WireLockSnapshotRequest(), options: CallOptions(timeout: callTimeout)))
    }

    /// Acquires `name` and keeps the lease renewed in the background until
    /// released, stopped, or lost; `onLost` (and the keeper's `changes`) say
    /// when it is lost. Throws what `acquire` throws.
    public func hold(_ name: String, ttl: Duration, wait: Duration = .zero, renewEvery: Duration? = nil,
                     onLost: (@Sendable (String) -> Void)? = nil) async throws(RPCError) -> LeaseKeeper {
        var grant = try await acquire(name, ttl: ttl, wait: wait)
        // After a long wait the grant may have come late in the request's life;
        // a renewal now gives a local deadline close to the real one.
        if ContinuousClock.now - grant.sentAt > ttl / 3 {
            do {
                grant = try await renew(name, token: grant.token)
            } catch {
                // Detached: a cancelled caller must still give the lock back.
                let token = grant.token
                _ = await Task.detached { [self] in try? await release(name, token: token) }.value
                throw error
            }
        }
        return LeaseKeeper(client: self, grant: grant, renewEvery: renewEvery, onLost: onLost)
    }

    /// Milliseconds on the wire, rounded up so that a sub-millisecond
    /// remainder never shortens a lease to 0; 0 for a negative duration.
    static func millis(_ duration: Duration) -> UInt64 {
        UInt64(max(0, duration.millisecondsRoundedUp))
    }
}
