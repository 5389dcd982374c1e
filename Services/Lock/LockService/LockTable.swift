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
/// - Tokens strictly increase per name and are never reused: `lastToken` is
///   durable and outlives the holder.
/// - Re-acquire by the current holder is refused (FAILED_PRECONDITION "already
///   held by you with token T"), with or without a wait: the lock is not
///   re-entrant, and waiting behind oneself would only deadlock. An owner
///   already queued for a lock cannot queue a second time.
/// - renew and release need the holder's owner and token; anything else is
///   FAILED_PRECONDITION (a stale token says who holds the lock now).
/// - A lease not renewed before it runs out expires (`expired` and `lost`
///   events) and the next waiter still waiting gets the lock. A waiter whose
///   own deadline passed is answered DEADLINE_EXCEEDED and never granted.
/// - Expiries and wait deadlines are applied lazily to a lock whenever a
///   request touches it, and to every lock by `tick`.
public struct LockTable: Sendable {
    public let limits: LockLimits

    struct Entry: Sendable {
        var lastToken: UInt64 = 0
        var holder: LockLease?
        var waiters: [LockWaiter] = []

        var isIdle: Bool { holder == nil && waiters.isEmpty }
    }

    private var entries: [String: Entry] = [:]
    /// Names with a holder or waiters.
    private var active: Set<String> = []
    /// Names whose durable state changed since the last `takeChanges()`.
    private var changed: Set<String> = []

    public init(limits: LockLimits = LockLimits()) {
        self.limits = limits
    }

    /// The table after a restart: every persisted holder keeps its lock, with a
    /// fresh lease of its longest ttl from `now`. That outlasts any lease the
    /// holder may still believe in (which at most ran that long from before
    /// the crash), so no second owner is granted while the first's lease could
    /// be live, whatever the wall clock did meanwhile. Waiters are not
    /// persisted: their requests died with the old process.
    public init(restoring records: [LockRecord], limits: LockLimits = LockLimits(), now: LockTime) {
        self.limits = limits
        for record in records {
            var entry = Entry(lastToken: record.lastToken)
            if let holder = record.holder {
                entry.lastToken = max(entry.lastToken, holder.token)
                let guardTTL = max(holder.guardTTL, holder.ttl)
                entry.holder = LockLease(name: record.name, owner: holder.owner, token: holder.token, ttl: holder.ttl,
                                         guardTTL: guardTTL, expiresAt: now.monotonic + guardTTL,
                                         expiresWallMicros: now.wall(after: guardTTL))
                active.insert(record.name)
            }
            entries[record.name] = entry
        }
    }

    // MARK: Requests

    /// Acquires `name` for `owner` with a lease of `ttl`. With `wait` zero it
    /// only tries; otherwise it queues until `now + wait`, or `waitCap` when
    /// that is earlier (the request's own deadline). A queued acquire is
    /// answered later by a `.granted` or `.waitExpired` effect for `waiter`.
    public mutating func acquire(name: String, owner: String, ttl: Duration, wait: Duration, waitCap: Duration? = nil,
                                 waiter: UInt64, now: LockTime, effects: inout [LockEffect]) throws(LockError) -> AcquireResult {
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
            let lease = grant(&entry, name: name, owner: owner, ttl: ttl, now: now, effects: &effects)
            entries[name] = entry
            active.insert(name)
            return .granted(lease)
        }
        if holder.owner == owner {
            throw .precondition("\(name) is already held by you (\(owner)) with token \(holder.token)")
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
        entry.waiters.append(LockWaiter(id: waiter, owner: owner, ttl: ttl, deadline: deadline,
                                        deadlineWallMicros: now.wall(after: deadline - now.monotonic)))
        entries[name] = entry
        return .queued(position: entry.waiters.count)
    }

    /// Extends the holder's lease to `ttl` (nil: its current ttl) from `now`.
    public mutating func renew(name: String, owner: String, token: UInt64, ttl: Duration?, now: LockTime,
                               effects: inout [LockEffect]) throws(LockError) -> LockLease {
        try validateName(name)
        try validateOwner(owner)
        if let ttl { try validateTTL(ttl) }
        settle(name: name, now: now, effects: &effects)
        var lease = try holder(of: name, owner: owner, token: token, action: "renew")
        let ttl = ttl ?? lease.ttl
        // Only the ttls reach the disk: a restart grants a fresh lease of the
        // longest one, so a renewal that keeps the ttl changes nothing durable.
        if ttl != lease.ttl || ttl > lease.guardTTL { changed.insert(name) }
        lease.ttl = ttl
        lease.guardTTL = max(lease.guardTTL, ttl)
        lease.expiresAt = now.monotonic + ttl
        lease.expiresWallMicros = now.wall(after: ttl)
        entries[name]?.holder = lease
        return lease
    }

    /// Frees the lock and grants it to the next waiter still waiting.
    public mutating func release(name: String, owner: String, token: UInt64, now: LockTime,
                                 effects: inout [LockEffect]) throws(LockError) {
        try validateName(name)
        try validateOwner(owner)
        settle(name: name, now: now, effects: &effects)
        let lease = try holder(of: name, owner: owner, token: token, action: "release")
        entries[name]?.holder = nil
        changed.insert(name)
        effects.append(.event(LockEvent(kind: .released, name: name, owner: owner, token: lease.token, expiresWallMicros: 0, reason: "")))
        settle(name: name, now: now, effects: &effects)
    }

    /// Applies expiries and wait deadlines due by `now` to every lock.
    public mutating func tick(now: LockTime, effects: inout [LockEffect]) {
        let due = active.filter { name in entries[name].map { Self.isDue($0, now: now) } ?? false }
        for name in due.sorted() { settle(name: name, now: now, effects: &effects) }
    }

    /// Applies what is due by `now` to one lock: its lease runs out, waiters
    /// past their deadline are answered, and a free lock passes to the head of
    /// its queue.
    public mutating func settle(name: String, now: LockTime, effects: inout [LockEffect]) {
        guard var entry = entries[name], !entry.isIdle else {
            active.remove(name)
            return
        }
        guard Self.isDue(entry, now: now) || (entry.holder == nil && !entry.waiters.isEmpty) else { return }
        if let holder = entry.holder, holder.expiresAt <= now.monotonic {
            entry.holder = nil
            changed.insert(name)
            let reason = "lease not renewed within \(holder.ttl.shortDescription)"
            for kind in [LockEvent.Kind.expired, .lost] {
                effects.append(.event(LockEvent(kind: kind, name: name, owner: holder.owner, token: holder.token,
                                                expiresWallMicros: holder.expiresWallMicros, reason: reason)))
            }
        }
        if entry.waiters.contains(where: { $0.deadline <= now.monotonic }) {
            for waiter in entry.waiters where waiter.deadline <= now.monotonic {
                effects.append(.waitExpired(waiter: waiter.id, name: name, holder: entry.holder?.owner))
            }
            entry.waiters.removeAll { $0.deadline <= now.monotonic }
        }
        if entry.holder == nil, !entry.waiters.isEmpty {
            let next = entry.waiters.removeFirst()
            let lease = grant(&entry, name: name, owner: next.owner, ttl: next.ttl, now: now, effects: &effects)
            effects.append(.granted(waiter: next.id, lease: lease))
        }
        entries[name] = entry
        if entry.isIdle { active.remove(name) }
    }

    // MARK: Queries

    /// The earliest moment something is due (a lease ends, a wait runs out).
    public var nextDeadline: Duration? {
        var earliest: Duration?
        for name in active {
            guard let entry = entries[name] else { continue }
            let candidates = [entry.holder?.expiresAt].compactMap { $0 } + entry.waiters.map(\.deadline)
            if let soonest = candidates.min() { earliest = min(earliest ?? soonest, soonest) }
        }
        return earliest
    }

    /// The holder of `name`, if any (expiries not yet settled included).
    public func holder(of name: String) -> LockLease? { entries[name]?.holder }

    /// The waiters of `name` in queue order.
    public func waiters(of name: String) -> [LockWaiter] { entries[name]?.waiters ?? [] }

    /// The highest token ever issued for `name` (0: never granted).
    public func lastToken(of name: String) -> UInt64 { entries[name]?.lastToken ?? 0 }

    /// Locks held or waited for, by name.
    public var activeNames: [String] { active.sorted() }

    /// How many locks are held and how many waiters are queued.
    public var counts: (held: Int, waiters: Int) {
        active.reduce(into: (0, 0)) { counts, name in
            if entries[name]?.holder != nil { counts.0 += 1 }
            counts.1 += entries[name]?.waiters.count ?? 0
        }
    }

    /// One lock as the wire reports it.
    public func info(_ name: String) -> WireLockInfo {
        WireLockInfo.with {
            $0.name = name
            if let entry = entries[name] {
                if let holder = entry.holder { $0.holder = holder.wire }
                $0.waiters = entry.waiters.map(\.wire)
                $0.lastToken = entry.lastToken
            }
        }
    }

    // MARK: Durability

    /// The durable state of every lock changed since the last call, sorted by name.
    public mutating func takeChanges() -> [LockRecord] {
        defer { changed.removeAll() }
        return changed.sorted().map(record(of:))
    }

    /// Whether changes wait for `takeChanges()`.
    public var hasChanges: Bool { !changed.isEmpty }

    /// Marks locks as changed again, after their records could not be written.
    public mutating func markChanged(_ names: [String]) {
        changed.formUnion(names)
    }

    /// The durable state of `name`.
    public func record(of name: String) -> LockRecord {
        let entry = entries[name] ?? Entry()
        return LockRecord(name: name, lastToken: entry.lastToken, holder: entry.holder.map {
            LockRecord.Holder(owner: $0.owner, token: $0.token, ttl: $0.ttl, guardTTL: $0.guardTTL, expiresWallMicros: $0.expiresWallMicros)
        })
    }

    // MARK: Helpers

    private mutating func grant(_ entry: inout Entry, name: String, owner: String, ttl: Duration, now: LockTime,
                                effects: inout [LockEffect]) -> LockLease {
        entry.lastToken += 1
        let lease = LockLease(name: name, owner: owner, token: entry.lastToken, ttl: ttl, guardTTL: ttl,
                              expiresAt: now.monotonic + ttl, expiresWallMicros: now.wall(after: ttl))
        entry.holder = lease
        changed.insert(name)
        effects.append(.event(LockEvent(kind: .acquired, name: name, owner: owner, token: lease.token,
                                        expiresWallMicros: lease.expiresWallMicros, reason: "")))
        return lease
    }

    /// The holder's lease when `owner` and `token` are the holder's; otherwise
    /// FAILED_PRECONDITION saying what is wrong.
    private func holder(of name: String, owner: String, token: UInt64, action: String) throws(LockError) -> LockLease {
        let entry = entries[name] ?? Entry()
        guard let lease = entry.holder else {
            if token > entry.lastToken {
                throw .precondition("cannot \(action) \(name): token \(token) was never granted (it is not held)")
            }
            throw .precondition("cannot \(action) \(name): it is not held; token \(token) expired or was released")
        }
        if token < lease.token {
            throw .precondition("cannot \(action) \(name): token \(token) is stale; it is held by \(lease.owner) with token \(lease.token)")
        }
        if token > lease.token {
            throw .precondition("cannot \(action) \(name): token \(token) was never granted; it is held with token \(lease.token)")
        }
        if owner != lease.owner {
            throw .precondition("cannot \(action) \(name): token \(token) is held by \(lease.owner), not \(owner)")
        }
        return lease
    }

    private static func isDue(_ entry: Entry, now: LockTime) -> Bool {
        if let holder = entry.holder, holder.expiresAt <= now.monotonic { return true }
        return entry.waiters.contains { $0.deadline <= now.monotonic }
    }

    private static func remaining(_ lease: LockLease, now: LockTime) -> String {
        max(.zero, lease.expiresAt - now.monotonic).shortDescription
    }

    /// Refuses (INVALID_ARGUMENT) an empty, oversized or unprintable lock name.
    public func validate(name: String) throws(LockError) {
        try Self.validate(name, what: "lock name", maxBytes: limits.maxNameBytes)
    }

    private func validateName(_ name: String) throws(LockError) {
        try validate(name: name)
    }

    private func validateOwner(_ owner: String) throws(LockError) {
        try Self.validate(owner, what: "owner", maxBytes: limits.maxNameBytes)
    }

    private static func validate(_ value: String, what: String, maxBytes: Int) throws(LockError) {
        if value.isEmpty { throw .invalid("\(what) must not be empty") }
        let bytes = value.utf8.count
        if bytes > maxBytes { throw .invalid("\(what) is \(bytes) bytes; at most \(maxBytes)") }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw .invalid("\(what) must not contain control characters")
        }
    }

    private func validateTTL(_ ttl: Duration) throws(LockError) {
        guard ttl > .zero else { throw .invalid("ttl must be positive") }
        guard ttl <= limits.maxTTL else {
            throw .invalid("ttl \(ttl.shortDescription) exceeds the maximum lease of \(limits.maxTTL.shortDescription)")
        }
    }
}
