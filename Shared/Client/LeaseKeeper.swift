import RPC
import RingProtocol
import Synchronization

/// What happened to a kept lease.
public enum LeaseChange: Sendable, Equatable {
    /// A renewal succeeded; the service now expires the lease at this time
    /// (microseconds since the Unix epoch, on the service's clock).
    case renewed(expiresUnixMicros: Int64)
    /// The lock is lost: a renewal was refused, or the lease ran out before a
    /// renewal succeeded. Stop using its token. The last change.
    case lost(reason: String)
    /// Released by ``LeaseKeeper/release()``. The last change.
    case released
}

/// Keeps a lease alive in the background and says promptly when it is lost.
///
/// It renews every `renewEvery` (default: a third of the ttl). A renewal
/// refused by the service (FAILED_PRECONDITION: the lease already expired or
/// the lock passed on) loses the lock at once. A renewal that fails otherwise
/// (service unreachable, timeout) is retried quickly until the lease's local
/// deadline; if none succeeded by then the lock is lost. The local deadline is
/// measured from when each successful renewal was *sent*, so it is never later
/// than the service's own expiry: when the keeper says the lease ran out, the
/// service may still hold it briefly, never the other way round.
///
/// Keep a reference while you hold the lock: releasing the keeper stops the
/// renewals (the lease then expires on the service).
public final class LeaseKeeper: Sendable {
    public let name: String
    public let token: UInt64
    public let ttl: Duration
    /// The grant the keeper started from.
    public let grant: LockGrant
    /// Every change, in order; finishes after `.lost` or `.released`.
    public let changes: AsyncStream<LeaseChange>
    private let core: KeeperCore
    private let task: Task<Void, Never>

    /// Starts keeping `grant` (as returned by ``LockClient/acquire(_:ttl:wait:)``
    /// or `renew`) alive. `onLost` runs once, on a background task, when the
    /// lock is lost.
    public init(client: LockClient, grant: LockGrant, renewEvery: Duration? = nil,
                onLost: (@Sendable (String) -> Void)? = nil) {
        name = grant.name
        token = grant.token
        ttl = grant.ttl
        self.grant = grant
        let (changes, continuation) = AsyncStream.makeStream(of: LeaseChange.self, bufferingPolicy: .unbounded)
        self.changes = changes
        let interval = max(.milliseconds(1), renewEvery ?? grant.ttl / 3)
        let core = KeeperCore(client: client, grant: grant, continuation: continuation, onLost: onLost)
        self.core = core
        task = Task { await core.run(interval: interval) }
    }

    deinit { task.cancel() }

    /// Whether the lease is still held by this process's reckoning: not lost,
    /// not released, and within its local deadline.
    public var isHeld: Bool { core.isHeld }

    /// How long the lease lasts at least, by the local deadline; nil once lost or released.
    public var remaining: Duration? { core.remaining }

    /// Why the lock was lost, once it was.
    public var lostReason: String? { core.lostReason }

    /// Stops renewing and releases the lock (the next waiter gets it). Throws
    /// FAILED_PRECONDITION when it was already lost, and what the release call
    /// throws.
    public func release() async throws(RPCError) {
        task.cancel()
        await task.value
        try await core.release()
    }

    /// Stops renewing without releasing: the lease expires on the service.
    public func stop() {
        task.cancel()
    }
}

/// The keeper's state, shared with its renewal task (which must not keep the
/// keeper itself alive).
final class KeeperCore: Sendable {
    enum Status: Sendable {
        case held(until: ContinuousClock.Instant)
        case lost(String)
        case released
    }

    let client: LockClient
    let grant: LockGrant
    private let status: Mutex<Status>
    private let continuation: AsyncStream<LeaseChange>.Continuation
    private let onLost: (@Sendable (String) -> Void)?

    init(client: LockClient, grant: LockGrant, continuation: AsyncStream<LeaseChange>.Continuation,
         onLost: (@Sendable (String) -> Void)?) {
        self.client = client
        self.grant = grant
        self.continuation = continuation
        self.onLost = onLost
        status = Mutex(.held(until: grant.validUntil))
    }

    var isHeld: Bool {
        if case .held(let until) = status.withLock({ $0 }) { return ContinuousClock.now < until }
        return false
    }

    var remaining: Duration? {
        if case .held(let until) = status.withLock({ $0 }) { return max(.zero, until - ContinuousClock.now) }
        return nil
    }

    var lostReason: String? {
        if case .lost(let reason) = status.withLock({ $0 }) { return reason }
        return nil
    }

    private var deadline: ContinuousClock.Instant? {
        if case .held(let until) = status.withLock({ $0 }) { return until }
        return nil
    }

    /// Renews until cancelled or lost.
    func run(interval: Duration) async {
        let clock = ContinuousClock()
        var nextRenewal = grant.sentAt + interval
        while !Task.isCancelled {
            guard let until = deadline else { return }
            // Wake for the renewal, or at the deadline if that comes first.
            let wake = min(nextRenewal, until)
            do { try await Task.sleep(until: wake, clock: clock) } catch { return }
            let sent = clock.now
            if sent >= until {
                lose("the lease ran out (ttl \(grant.ttl)) before a renewal succeeded")
                return
            }
            if sent < nextRenewal { continue }
            do {
                let renewed = try await client.renew(grant.name, token: grant.token, timeout: min(client.callTimeout, until - sent))
                let held = status.withLock { status -> Bool in
                    guard case .held = status else { return false }
                    status = .held(until: renewed.validUntil)
                    return true
                }
                guard held else { return }
                continuation.yield(.renewed(expiresUnixMicros: renewed.expiresUnixMicros))
                nextRenewal = sent + interval
            } catch {
                if error.code == .cancelled || Task.isCancelled { return }
                if error.code == .failedPrecondition || error.code == .invalidArgument || error.code == .notFound {
                    lose("renewal refused: \(error.message)")
                    return
                }
                // Transient: try again soon, until the deadline.
                nextRenewal = clock.now + min(interval / 4, .milliseconds(250))
            }
        }
    }

    func release() async throws(RPCError) {
        let current = status.withLock { $0 }
        switch current {
        case .lost(let reason):
            throw .failedPrecondition("\(grant.name) token \(grant.token) was already lost: \(reason)")
        case .released:
            return
        case .held:
            try await client.release(grant.name, token: grant.token)
            let changed = status.withLock { status -> Bool in
                guard case .held = status else { return false }
                status = .released
                return true
            }
            if changed {
                continuation.yield(.released)
                continuation.finish()
            }
        }
    }

    private func lose(_ reason: String) {
        let changed = status.withLock { status -> Bool in
            guard case .held = status else { return false }
            status = .lost(reason)
            return true
        }
        guard changed else { return }
        continuation.yield(.lost(reason: reason))
        continuation.finish()
        onLost?(reason)
    }
}
