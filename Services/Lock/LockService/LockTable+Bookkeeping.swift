import Basics
import RingProtocol

/// The lock table's inner workings: the deadline heap, grants and drops,
/// and the checks of its inputs.
extension LockTable {
    // MARK: Deadline bookkeeping

    /// The entry's own deadline: its lease's end, or when free with no
    /// waiters, the moment it is forgotten.
    func deadline(of entry: Entry) -> Duration? {
        if let holder = entry.holder { return holder.expiresAt }
        if entry.waiters.isEmpty, let idleSince = entry.idleSince { return idleSince + forgetAfter }
        return nil
    }

    /// Writes `entry` back after a change: keeps the active set and the idle
    /// time current and makes sure the heap has an item for its deadline no
    /// later than the deadline itself.
    mutating func store(_ entry: Entry, name: String, now: ServiceTime) {
        var entry = entry
        if entry.isIdle {
            if entry.idleSince == nil { entry.idleSince = now.monotonic }
            active.remove(name)
        } else {
            entry.idleSince = nil
            active.insert(name)
        }
        if let due = deadline(of: entry), entry.scheduled.map({ due < $0 }) ?? true {
            entry.scheduled = due
            deadlines.insert(Deadline(at: due, name: name, waiter: nil))
        }
        entries[name] = entry
        compactDeadlinesIfStale()
    }

    /// Rebuilds the heap from the table when stale items (renewals that
    /// shortened a lease, waiters granted or gone before their deadline)
    /// outnumber live ones: O(n), at most once per n stale items.
    mutating func compactDeadlinesIfStale() {
        let live = entries.count + queued.count
        guard deadlines.count > 2 * live + 1024 else { return }
        var items: [Deadline] = []
        items.reserveCapacity(live)
        for name in Array(entries.keys) {
            guard var entry = entries[name] else { continue }
            entry.scheduled = deadline(of: entry)
            if let due = entry.scheduled { items.append(Deadline(at: due, name: name, waiter: nil)) }
            for waiter in entry.waiters { items.append(Deadline(at: waiter.deadline, name: name, waiter: waiter.id)) }
            entries[name] = entry
        }
        deadlines = MinHeap(items)
    }

    /// The earliest deadline by looking at every lock, for tests that check
    /// the heap against it.
    func scannedNextDeadline() -> Duration? {
        entries.values.flatMap { entry in [deadline(of: entry)].compactMap { $0 } + entry.waiters.map(\.deadline) }.min()
    }

    /// How many items the deadline heap holds, live and stale, for tests.
    var deadlineItems: Int { deadlines.count }

    // MARK: Helpers

    mutating func grant(_ entry: inout Entry, name: String, owner: String, ttl: Duration, attempt: UInt64, session: String?,
                                now: ServiceTime, effects: inout [LockEffect]) -> LockLease {
        lastToken += 1
        tokenChanged = true
        entry.lastToken = lastToken
        var lease = LockLease(name: name, owner: owner, token: lastToken, ttl: ttl, guardTTL: ttl,
                              expiresAt: now.monotonic + ttl, expiresWallMicros: now.wall(after: ttl), attempt: attempt)
        lease.session = session
        entry.holder = lease
        changed.insert(name)
        effects.append(.event(LockEvent(kind: .acquired, name: name, owner: owner, token: lease.token,
                                        expiresWallMicros: lease.expiresWallMicros, reason: "")))
        return lease
    }

    /// Frees the lock held with `lease` (a `released` event) and passes it on.
    mutating func dropHolder(_ lease: LockLease, reason: String, now: ServiceTime, effects: inout [LockEffect]) {
        entries[lease.name]?.holder = nil
        changed.insert(lease.name)
        effects.append(.event(LockEvent(kind: .released, name: lease.name, owner: lease.owner, token: lease.token,
                                        expiresWallMicros: 0, reason: reason)))
        settle(name: lease.name, now: now, effects: &effects)
    }

    /// The holder's lease when `owner` and `token` are the holder's; otherwise
    /// FAILED_PRECONDITION saying what is wrong.
    /// The lease `owner` holds `name` with under `token`; with a bound
    /// session, the request must come from it (or be `privileged`: an admin).
    func holder(of name: String, owner: String, token: UInt64, action: String, session: String?,
                privileged: Bool) throws(LockError) -> LockLease {
        let entry = entries[name]
        guard let lease = entry?.holder else {
            if token > lastToken {
                throw .precondition("cannot \(action) \(name): token \(token) was never granted (it is not held)")
            }
            if token > entry?.lastToken ?? 0 {
                // Another lock's token, or one of this name before it was forgotten.
                throw .precondition("cannot \(action) \(name): it is not held, and token \(token) is not its latest lease")
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
        if let bound = lease.session, bound != session, !privileged {
            throw LockError(kind: .permissionDenied,
                            message: "cannot \(action) \(name): token \(token) was granted to another session; only that session or an admin may")
        }
        return lease
    }

    static func remaining(_ lease: LockLease, now: ServiceTime) -> String {
        max(.zero, lease.expiresAt - now.monotonic).shortDescription
    }

    /// Refuses (INVALID_ARGUMENT) an empty, oversized or unprintable lock name.
    public func validate(name: String) throws(LockError) {
        try Self.validate(name, what: "lock name", maxBytes: limits.maxNameBytes)
    }

    func validateName(_ name: String) throws(LockError) {
        try validate(name: name)
    }

    func validateOwner(_ owner: String) throws(LockError) {
        try Self.validate(owner, what: "owner", maxBytes: limits.maxNameBytes)
    }

    static func validate(_ value: String, what: String, maxBytes: Int) throws(LockError) {
        if value.isEmpty { throw .invalid("\(what) must not be empty") }
        let bytes = value.utf8.count
        if bytes > maxBytes { throw .invalid("\(what) is \(bytes) bytes; at most \(maxBytes)") }
        if value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw .invalid("\(what) must not contain control characters")
        }
    }

    func validateTTL(_ ttl: Duration) throws(LockError) {
        guard ttl > .zero else { throw .invalid("ttl must be positive") }
        guard ttl <= limits.maxTTL else {
            throw .invalid("ttl \(ttl.shortDescription) exceeds the maximum lease of \(limits.maxTTL.shortDescription)")
        }
    }
}
