import Basics
import RingProtocol

/// What the lock table answers and what it hands to the store.
extension LockTable {
    // MARK: Queries

    /// The earliest moment something is due (a lease ends, a wait runs out, a
    /// free lock is to be forgotten). Mutating because it drops stale heap
    /// items it meets on top (and moves early ones to their real time), which
    /// keeps the cost a few heap operations instead of a scan of every lock.
    public var nextDeadline: Duration? {
        mutating get {
            while let top = deadlines.min {
                deadlineProbes += 1
                if let waiter = top.waiter {
                    if queued[waiter] == top.name { return top.at }
                    deadlines.removeMin()
                    continue
                }
                guard var entry = entries[top.name], entry.scheduled == top.at else {
                    deadlines.removeMin()
                    continue
                }
                let real = deadline(of: entry)
                if real == top.at { return top.at }
                deadlines.removeMin()
                entry.scheduled = real
                if let real { deadlines.insert(Deadline(at: real, name: top.name, waiter: nil)) }
                entries[top.name] = entry
            }
            return nil
        }
    }

    /// The holder of `name`, if any (expiries not yet settled included).
    public func holder(of name: String) -> LockLease? { entries[name]?.holder }

    /// The waiters of `name` in queue order.
    public func waiters(of name: String) -> [LockWaiter] { entries[name]?.waiters ?? [] }

    /// The token of the latest grant of `name` (0: none since the name was
    /// last forgotten, or never).
    public func lastToken(of name: String) -> UInt64 { entries[name]?.lastToken ?? 0 }

    /// Locks held or waited for, by name.
    public var activeNames: [String] { active.sorted() }

    /// How many lock names the table remembers: the active ones and the free
    /// ones not forgotten yet.
    public var knownNames: Int { entries.count }

    /// How many locks are held and how many waiters are queued.
    public var counts: (held: Int, waiters: Int) {
        (active.reduce(0) { $0 + (entries[$1]?.holder == nil ? 0 : 1) }, queued.count)
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

    /// What changed durably since the last call: the records of changed
    /// locks and the names forgotten, sorted by name, and the token counter.
    public mutating func takeChanges() -> LockChanges {
        defer {
            changed.removeAll()
            tokenChanged = false
        }
        var changes = LockChanges(records: [], forgotten: [], lastToken: lastToken)
        for name in changed.sorted() {
            if entries[name] != nil {
                changes.records.append(record(of: name))
            } else {
                changes.forgotten.append(name)
            }
        }
        return changes
    }

    /// Whether changes wait for `takeChanges()`.
    public var hasChanges: Bool { !changed.isEmpty || tokenChanged }

    /// Marks changes as pending again, after they could not be written. A
    /// name's current state is written then (a record, or its removal).
    public mutating func markChanged(_ changes: LockChanges) {
        changed.formUnion(changes.records.map(\.name))
        changed.formUnion(changes.forgotten)
        tokenChanged = true
    }

    /// The durable state of `name`.
    public func record(of name: String) -> LockRecord {
        let entry = entries[name] ?? Entry()
        return LockRecord(name: name, lastToken: entry.lastToken, holder: entry.holder.map {
            LockRecord.Holder(owner: $0.owner, token: $0.token, ttl: $0.ttl, guardTTL: $0.guardTTL, expiresWallMicros: $0.expiresWallMicros,
                              session: $0.session, attempt: $0.attempt)
        }, waiters: entry.waiters.map {
            LockRecord.Waiter(owner: $0.owner, attempt: $0.attempt, ttl: $0.ttl, deadlineWallMicros: $0.deadlineWallMicros, session: $0.session)
        })
    }
}
