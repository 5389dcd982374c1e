/// Durable hinted handoff: writes kept for replicas that could not be reached.
///
/// When a replica is down, the coordinator stores the write on a stand-in node as
/// a hint naming the intended target (`host:port`). Hints live in the engine's
/// database, survive restarts, and are replayed in insertion order when the
/// target is back; the target's merge makes replay idempotent, so a hint sent
/// twice is harmless. Remove hints only after the target acknowledged them.
///
/// Obtained from ``StorageEngine/hints``; it shares the engine's connection and
/// thread, and throws ``StorageError/closed`` once the engine is closed.
public final class HintStore {
    private let database: EngineDatabase

    init(database: EngineDatabase) {
        self.database = database
    }

    /// Stores hints, each a record for a target address, in one transaction; returns
    /// their ids in order. Throws ``StorageError/invalidArgument`` for an empty target.
    @discardableResult
    public func addHints(_ hints: [(target: String, record: VersionedRecord)]) throws(StorageError) -> [Int64] {
        if let hint = hints.first(where: { $0.target.isEmpty }) {
            throw StorageError.invalidArgument.with(message: "a hint for key position \(hint.record.position) has no target")
        }
        return try database.transaction { connection throws(StorageError) in
            let insert = try database.statement(StorageSchema.insertHint, connection: connection)
            var ids: [Int64] = []
            ids.reserveCapacity(hints.count)
            for hint in hints {
                try insert.bind(hint.target, at: 1)
                try insert.execute(binding: hint.record, from: 2)
                ids.append(insert.lastInsertedRowID)
            }
            return ids
        }
    }

    /// Stores `records` as hints for one `target`, in one transaction; returns their ids.
    @discardableResult
    public func addHints(_ records: [VersionedRecord], for target: String) throws(StorageError) -> [Int64] {
        try addHints(records.map { (target: target, record: $0) })
    }

    /// Up to `limit` hints for `target` with ids above `afterID`, oldest first.
    ///
    /// Page through a backlog by passing the last id returned. Throws
    /// ``StorageError/invalidArgument`` for a `limit` below 1.
    public func hints(for target: String, after afterID: Int64 = 0, limit: Int) throws(StorageError) -> [Hint] {
        guard limit >= 1 else {
            throw StorageError.invalidArgument.with(message: "hint limit \(limit); it must be at least 1")
        }
        return try database.access { connection throws(StorageError) in
            let select = try database.statement(StorageSchema.selectHints, connection: connection)
            defer { select.reset() }
            try select.bind(target, at: 1)
            try select.bind(afterID, at: 2)
            try select.bind(Int64(limit), at: 3)
            var hints: [Hint] = []
            while try select.step() {
                hints.append(Hint(id: select.int64(0), target: target, record: try select.record(at: 1)))
            }
            return hints
        }
    }

    /// Deletes the hints with these ids in one transaction (after their target acknowledged
    /// them) and returns how many existed; unknown ids are ignored.
    @discardableResult
    public func removeHints(_ ids: [Int64]) throws(StorageError) -> Int {
        try database.transaction { connection throws(StorageError) in
            let delete = try database.statement(StorageSchema.deleteHint, connection: connection)
            var removed = 0
            for id in ids {
                try delete.bind(id, at: 1)
                try delete.run()
                removed += delete.changes
            }
            return removed
        }
    }

    /// Deletes every hint for `target`, e.g. when that member left the cluster for good;
    /// returns how many there were.
    @discardableResult
    public func removeAllHints(for target: String) throws(StorageError) -> Int {
        try database.transaction { connection throws(StorageError) in
            let delete = try database.statement(StorageSchema.deleteTargetHints, connection: connection)
            try delete.bind(target, at: 1)
            try delete.run()
            return delete.changes
        }
    }

    /// How many hints wait for delivery, in total and per target: from the totals the
    /// engine keeps with every change, so it costs a row per target, not per hint.
    public func pendingHintCount() throws(StorageError) -> HintCounts {
        try hintCounts(sql: StorageSchema.countHints)
    }

    /// The same counted from the hints themselves: what ``pendingHintCount()`` must equal.
    public func countedHintCount() throws(StorageError) -> HintCounts {
        try hintCounts(sql: StorageSchema.countHintsCounted)
    }

    private func hintCounts(sql: String) throws(StorageError) -> HintCounts {
        try database.access { connection throws(StorageError) in
            let select = try database.statement(sql, connection: connection)
            defer { select.reset() }
            var counts = HintCounts()
            while try select.step() {
                guard let target = select.text(0) else {
                    throw StorageError.corruptRow.with(message: "a hint target is not text")
                }
                let count = Int(select.int64(1))
                counts.byTarget[target] = count
                counts.total += count
            }
            return counts
        }
    }
}
