import Basics
import RingProtocol

/// Every lock of the service as a pure state machine: leases, FIFO waiters
/// and fencing tokens.
///
/// Each method takes the current time as an input, appends the effects the
/// server must carry out (answers to parked acquires, events) to `effects`,
/// and records which locks' durable state changed (`takeChanges()`); it never
/// reads a clock, sleeps or does I/O, so it is tested with a fake clock.
///
/// Rules:
/// - A lock is granted at once when free; otherwise the acquire queues FIFO
///   (or, with no wait, is refused with FAILED_PRECONDITION "held by ...").
/// - Tokens come from one counter for the whole service (see `lastToken`):
///   every grant takes the next value, so a lock's tokens strictly increase,
///   across forgetting its name and across restarts, and are never reused.
/// - Re-acquire by the current holder is refused (FAILED_PRECONDITION "already
///   held by you with token T"), with or without a wait: the lock is not
///   re-entrant, and waiting behind oneself would only deadlock. An owner
///   already queued for a lock cannot queue a second time.
/// - renew and release need the holder's owner and token; anything else is
///   FAILED_PRECONDITION (a stale token says who holds the lock now).
/// - A lease not renewed before it runs out expires (`expired` and `lost`
///   events) and the next waiter still waiting gets the lock. A waiter whose
///   own deadline passed is answered DEADLINE_EXCEEDED and never granted.
/// - A waiter that gives up (`cancel`) or whose client is gone (`withdraw`)
///   leaves the queue; a grant that reached nobody is taken back (`revoke`).
/// - A free lock with no waiters is forgotten `forgetAfter` after it became
///   free: its name leaves memory and the store.
/// - Expiries, wait deadlines and forget times are applied lazily to a lock
///   whenever a request touches it, and to every lock that is due by `tick`,
///   which finds them in a min-heap of deadlines instead of scanning.
///
/// The type spans three files: this one (state and requests),
/// `LockTable+Queries.swift` (answers and durable changes) and
/// `LockTable+Bookkeeping.swift` (the deadline heap, grants, input checks).
/// Its stored state is internal rather than private for that reason only:
/// nothing outside these files touches it.
public struct LockTable: Sendable {
    public let limits: LockLimits
    /// How long a free lock without waiters is remembered before it is forgotten.
    public let forgetAfter: Duration

    struct Entry: Sendable {
        /// The token of this name's latest grant.
        var lastToken: UInt64 = 0
        var holder: LockLease?
        var waiters: [LockWaiter] = []
        /// Since when the lock is free with no waiters (monotonic); nil while in use.
        var idleSince: Duration?
        /// When this entry's own item in the deadline heap comes due: never
        /// later than its real deadline (`LockTable.deadline(of:)`), and nil
        /// when it has no item. A renewal that moves the lease's end later
        /// leaves the early item in place; when it reaches the top it is
        /// moved to the real deadline (one heap operation per lease period,
        /// not one per renewal).
        var scheduled: Duration?

        var isIdle: Bool { holder == nil && waiters.isEmpty }
    }

    /// An item of the deadline heap: a lock's own deadline (lease end or
    /// forget time) or one waiter's. Items are never updated: one that no
    /// longer matches the table is stale and skipped when it reaches the top.
    struct Deadline: Comparable, Sendable {
        let at: Duration
        let name: String
        /// The waiter whose wait ends; nil for the lock's own deadline.
        let waiter: UInt64?

        static func < (lhs: Deadline, rhs: Deadline) -> Bool {
            (lhs.at, lhs.name, lhs.waiter ?? 0) < (rhs.at, rhs.name, rhs.waiter ?? 0)
        }
    }

    var entries: [String: Entry] = [:]
    /// Names with a holder or waiters.
    var active: Set<String> = []
    /// Names whose durable state changed (or that were forgotten) since the last `takeChanges()`.
    var changed: Set<String> = []
    /// The lock each queued waiter waits for, by waiter id.
    var queued: [UInt64: String] = [:]
    var deadlines = MinHeap<Deadline>()

    /// The highest token the service ever issued, for any name.
    ///
    /// One durable counter for the whole service rather than one per name:
    /// names are forgotten once free (so a counter kept per name would have
    /// to outlive its name, which is what forgetting is meant to end), and a
    /// single counter makes every name's tokens strictly increase with no
    /// per-name state at all, across forgetting and restarts. The price is
    /// that one lock's tokens are no longer dense (1, 2, 3, ...): other locks'
    /// grants take values in between. Fencing only needs them to increase.
    public internal(set) var lastToken: UInt64 = 0
    var tokenChanged = false
    /// Whether a change of a queue is a durable change (the etcd store keeps
    /// queues, so that a new leader keeps their order; the embedded store
    /// does not, since the queued requests die with the process).
    public var persistsWaiters = false
    /// Waiter ids from here up are waiters restored from the store, whose
    /// clients have not sent their acquire again yet.
    public static let restoredWaiterBase: UInt64 = 1 << 62

    /// Heap items looked at while finding deadlines, for tests: finding the
    /// next deadline costs a few items, not one per lock.
    public internal(set) var deadlineProbes = 0

    public init(limits: LockLimits = LockLimits(), forgetAfter: Duration = .seconds(3600)) {
        self.limits = limits
        self.forgetAfter = max(.zero, forgetAfter)
    }

    /// The table after a restart: every persisted holder keeps its lock, with a
    /// fresh lease of its longest ttl from `now`. That outlasts any lease the
    /// holder may still believe in (which at most ran that long from before
    /// the crash), so no second owner is granted while the first's lease could
    /// be live, whatever the wall clock did meanwhile. Waiters are not
    /// persisted: their requests died with the old process. A free lock's
    /// grace before it is forgotten starts again at `now`. The token counter
    /// continues from `lastToken` or the highest persisted token, whichever is higher.
    public init(restoring records: [LockRecord], lastToken: UInt64 = 0, limits: LockLimits = LockLimits(),
                forgetAfter: Duration = .seconds(3600), now: ServiceTime) {
        self.init(limits: limits, forgetAfter: forgetAfter)
        self.lastToken = lastToken
        for record in records {
            var entry = Entry(lastToken: record.lastToken)
            if let holder = record.holder {
                entry.lastToken = max(entry.lastToken, holder.token)
                let guardTTL = max(holder.guardTTL, holder.ttl)
                entry.holder = LockLease(name: record.name, owner: holder.owner, token: holder.token, ttl: holder.ttl,
                                         guardTTL: guardTTL, expiresAt: now.monotonic + guardTTL,
                                         expiresWallMicros: now.wall(after: guardTTL), attempt: holder.attempt)
                entry.holder?.session = holder.session
            }
            // Queued acquires of a leader that went away keep their order;
            // each waits (detached) until its client sends it again, or its
            // own wait ends.
            for saved in record.waiters {
                let remaining = Duration.microseconds(max(0, saved.deadlineWallMicros - now.wallMicros))
                guard remaining > .zero else { continue }
                let id = Self.restoredWaiterBase + UInt64(queued.count) + 1
                var waiter = LockWaiter(id: id, owner: saved.owner, ttl: saved.ttl, deadline: now.monotonic + remaining,
                                        deadlineWallMicros: saved.deadlineWallMicros, attempt: saved.attempt)
                waiter.session = saved.session
                entry.waiters.append(waiter)
                queued[id] = record.name
                deadlines.insert(Deadline(at: waiter.deadline, name: record.name, waiter: id))
            }
            self.lastToken = max(self.lastToken, entry.lastToken)
            store(entry, name: record.name, now: now)
        }
    }

    // MARK: Requests

    /// Acquires `name` for `owner` with a lease of `ttl`. With `wait` zero it
    /// only tries; otherwise it queues until `now + wait`, or `waitCap` when
    /// that is earlier (the request's own deadline). A queued acquire is
    /// answered later by a `.granted` or `.waitExpired` effect for `waiter`,
    /// which must be unique among queued waiters. `attempt` is the client's id
    /// of this acquire (0: none), which its `cancel` names.
    public mutating func acquire(name: String, owner: String, ttl: Duration, wait: Duration, waitCap: Duration? = nil,
                                 attempt: UInt64 = 0, session: String? = nil, waiter: UInt64, now: ServiceTime,
                                 effects: inout [LockEffect]) throws(LockError) -> AcquireResult {
        try validateName(name)
        try validateOwner(owner)
        try validateTTL(ttl)
        guard wait >= .zero, wait <= limits.maxWait else {
            throw .invalid("wait \(wait.shortDescription) is out of range: at most \(limits.maxWait.shortDescription)")
        }
        settle(name: name, now: now, effects: &effects)
        var entry = entries[name] ?? Entry()
        guard let holder = entry.holder else {
            // Free (settling granted the queue's head if there was one, so nobody waits).
            guard active.count < limits.maxActiveLocks else {
                throw LockError(kind: .resourceExhausted, message: "too many active locks (\(limits.maxActiveLocks))")
            }
            let lease = grant(&entry, name: name, owner: owner, ttl: ttl, attempt: attempt, session: session, now: now, effects: &effects)
            store(entry, name: name, now: now)
            return .granted(lease)
        }
        if holder.owner == owner {
            // The same acquire sent again (its reply was lost with a leader): the same grant.
            if attempt != 0 && holder.attempt == attempt { return .granted(holder) }
            throw .precondition("\(name) is already held by you (\(owner)) with token \(holder.token)")
        }
        if attempt != 0, let index = entry.waiters.firstIndex(where: { $0.owner == owner && $0.attempt == attempt }),
           queued[waiter] == nil {
            // The same acquire sent again (to a new leader, or after its
            // connection dropped): it takes its own place in the queue back.
            let old = entry.waiters[index]
            let deadline = waitCap.map { min(old.deadline, $0) } ?? old.deadline
            var replacement = LockWaiter(id: waiter, owner: owner, ttl: old.ttl, deadline: deadline,
                                         deadlineWallMicros: old.deadlineWallMicros, attempt: attempt)
            replacement.session = session ?? old.session
            entry.waiters[index] = replacement
            queued[old.id] = nil
            queued[waiter] = name
            deadlines.insert(Deadline(at: deadline, name: name, waiter: waiter))
            if old.id < Self.restoredWaiterBase { effects.append(.superseded(waiter: old.id)) }
            store(entry, name: name, now: now)
            return .queued(position: index + 1)
        }
        if let index = entry.waiters.firstIndex(where: { $0.owner == owner }) {
            throw .precondition("\(owner) is already waiting for \(name) (position \(index + 1) in the queue)")
        }
        let remaining = Self.remaining(holder, now: now)
        if wait == .zero {
            throw .precondition("\(name) is held by \(holder.owner) with token \(holder.token) (lease ends in \(remaining))")
        }
        var deadline = now.monotonic + wait
        if let waitCap { deadline = min(deadline, waitCap) }
        guard deadline > now.monotonic else {
            throw LockError(kind: .deadlineExceeded,
                            message: "no time left to wait for \(name): held by \(holder.owner) with token \(holder.token)")
        }
        guard entry.waiters.count < limits.maxWaitersPerLock else {
            throw LockError(kind: .resourceExhausted, message: "\(name) already has \(entry.waiters.count) waiters")
        }
        guard queued[waiter] == nil else {
            throw .invalid("waiter id \(waiter) is already queued")
        }
        var waiterEntry = LockWaiter(id: waiter, owner: owner, ttl: ttl, deadline: deadline,
                                        deadlineWallMicros: now.wall(after: deadline - now.monotonic), attempt: attempt)
        waiterEntry.session = session
        entry.waiters.append(waiterEntry)
        if persistsWaiters { changed.insert(name) }
        queued[waiter] = name
        deadlines.insert(Deadline(at: deadline, name: name, waiter: waiter))
        store(entry, name: name, now: now)
        return .queued(position: entry.waiters.count)
    }

    /// Extends the holder's lease to `ttl` (nil: its current ttl) from `now`.
    public mutating func renew(name: String, owner: String, token: UInt64, ttl: Duration?, session: String? = nil,
                               privileged: Bool = false, now: ServiceTime, effects: inout [LockEffect]) throws(LockError) -> LockLease {
        try validateName(name)
        try validateOwner(owner)
        if let ttl { try validateTTL(ttl) }
        settle(name: name, now: now, effects: &effects)
        var lease = try holder(of: name, owner: owner, token: token, action: "renew", session: session, privileged: privileged)
        let ttl = ttl ?? lease.ttl
        // Only the ttls reach the disk: a restart grants a fresh lease of the
        // longest one, so a renewal that keeps the ttl changes nothing durable.
        if ttl != lease.ttl || ttl > lease.guardTTL { changed.insert(name) }
        lease.ttl = ttl
        lease.guardTTL = max(lease.guardTTL, ttl)
        lease.expiresAt = now.monotonic + ttl
        lease.expiresWallMicros = now.wall(after: ttl)
        if var entry = entries[name] {
            entry.holder = lease
            store(entry, name: name, now: now)
        }
        return lease
    }

    /// Frees the lock and grants it to the next waiter still waiting.
    public mutating func release(name: String, owner: String, token: UInt64, session: String? = nil, privileged: Bool = false,
                                 now: ServiceTime, effects: inout [LockEffect]) throws(LockError) {
        try validateName(name)
        try validateOwner(owner)
        settle(name: name, now: now, effects: &effects)
        let lease = try holder(of: name, owner: owner, token: token, action: "release", session: session, privileged: privileged)
        dropHolder(lease, reason: "", now: now, effects: &effects)
    }

    /// The client that sent acquire `attempt` for `owner` gave up on it: takes
    /// that waiter out of the queue, or, when the acquire was granted before
    /// the client saw the grant, releases the lock again. With `attempt` 0 it
    /// takes any queued waiter of `owner` for `name` out, and never releases.
    public mutating func cancel(name: String, owner: String, attempt: UInt64, now: ServiceTime,
                                effects: inout [LockEffect]) throws(LockError) -> CancelOutcome {
        try validateName(name)
        try validateOwner(owner)
        settle(name: name, now: now, effects: &effects)
        guard var entry = entries[name] else { return .nothing }
        if let index = entry.waiters.firstIndex(where: { $0.owner == owner && (attempt == 0 || $0.attempt == attempt) }) {
            let waiter = entry.waiters.remove(at: index)
            queued[waiter.id] = nil
            if persistsWaiters { changed.insert(name) }
            store(entry, name: name, now: now)
            return .dequeued(waiter: waiter.id)
        }
        if attempt != 0, let lease = entry.holder, lease.owner == owner, lease.attempt == attempt {
            dropHolder(lease, reason: "the client gave up before the grant reached it", now: now, effects: &effects)
            return .released(token: lease.token)
        }
        return .nothing
    }

    /// Takes queued waiter `id` out of its queue (its client is gone).
    /// Returns the lock it waited for, or nil when it was not queued.
    @discardableResult
    public mutating func withdraw(waiter id: UInt64, now: ServiceTime, effects: inout [LockEffect]) -> String? {
        guard let name = queued.removeValue(forKey: id), var entry = entries[name],
              let index = entry.waiters.firstIndex(where: { $0.id == id })
        else { return nil }
        entry.waiters.remove(at: index)
        if persistsWaiters { changed.insert(name) }
        store(entry, name: name, now: now)
        return name
    }

    /// Takes back the lease of `name` with `token` when its grant could not be
    /// delivered (the client is gone), and passes the lock on. Returns whether
    /// it was still held with that token.
    @discardableResult
    public mutating func revoke(name: String, token: UInt64, reason: String, now: ServiceTime, effects: inout [LockEffect]) -> Bool {
        guard let lease = entries[name]?.holder, lease.token == token else { return false }
        dropHolder(lease, reason: reason, now: now, effects: &effects)
        return true
    }

    /// Applies every expiry, wait deadline and forget time due by `now`.
    public mutating func tick(now: ServiceTime, effects: inout [LockEffect]) {
        while let next = nextDeadline, next <= now.monotonic {
            guard let item = deadlines.removeMin() else { return }
            if item.waiter == nil { entries[item.name]?.scheduled = nil }
            settle(name: item.name, now: now, effects: &effects)
        }
    }

    /// Applies what is due by `now` to one lock: its lease runs out, waiters
    /// past their deadline are answered, a free lock passes to the head of
    /// its queue, and a lock free for `forgetAfter` is forgotten.
    public mutating func settle(name: String, now: ServiceTime, effects: inout [LockEffect]) {
        guard var entry = entries[name] else {
            active.remove(name)
            return
        }
        let time = now.monotonic
        if let holder = entry.holder, holder.expiresAt <= time {
            entry.holder = nil
            changed.insert(name)
            let reason = "lease not renewed within \(holder.ttl.shortDescription)"
            for kind in [LockEvent.Kind.expired, .lost] {
                effects.append(.event(LockEvent(kind: kind, name: name, owner: holder.owner, token: holder.token,
                                                expiresWallMicros: holder.expiresWallMicros, reason: reason)))
            }
        }
        if entry.waiters.contains(where: { $0.deadline <= time }) {
            for waiter in entry.waiters where waiter.deadline <= time {
                queued[waiter.id] = nil
                effects.append(.waitExpired(waiter: waiter.id, name: name, holder: entry.holder?.owner))
            }
            entry.waiters.removeAll { $0.deadline <= time }
            if persistsWaiters { changed.insert(name) }
        }
        if entry.holder == nil, !entry.waiters.isEmpty {
            let next = entry.waiters.removeFirst()
            queued[next.id] = nil
            let lease = grant(&entry, name: name, owner: next.owner, ttl: next.ttl, attempt: next.attempt, session: next.session,
                              now: now, effects: &effects)
            effects.append(.granted(waiter: next.id, lease: lease))
        }
        if entry.isIdle, let idleSince = entry.idleSince, idleSince + forgetAfter <= time {
            entries[name] = nil
            active.remove(name)
            changed.insert(name)
            return
        }
        store(entry, name: name, now: now)
    }
}
