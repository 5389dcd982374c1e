/// Housekeeping: collecting old tombstones and measuring what the node stores.
extension StorageEngine {
    /// Deletes tombstones whose version timestamp is below `timestamp` and returns how many.
    ///
    /// A tombstone must outlive every way an older value could come back (hints,
    /// read repair, a replica returning from a long outage), so callers pass
    /// "now minus a grace period", e.g. `HybridLogicalClock.timestamp(milliseconds:
    /// now - grace, counter: 0)`, with a grace longer than hints are kept.
    @discardableResult
    public func purgeTombstones(olderThan timestamp: UInt64) throws(StorageError) -> Int {
        try database.transaction { connection throws(StorageError) in
            let purge = try database.statement(StorageSchema.purgeTombstones, connection: connection)
            try purge.bind(StorageSchema.stored(timestamp), at: 1)
            try purge.run()
            return purge.changes
        }
    }

    /// Live keys, tombstones and bytes stored, and the file size. Reads the totals the
    /// engine keeps with every write, so it costs the same whatever the data size.
    public func stats() throws(StorageError) -> StorageStats {
        try stats(totalsSQL: StorageSchema.totals)
    }

    /// The same figures counted from the rows (reads the whole table): what ``stats()``
    /// must always equal, for tests and consistency checks.
    public func countedStats() throws(StorageError) -> StorageStats {
        try stats(totalsSQL: StorageSchema.totalsCounted)
    }

    private func stats(totalsSQL: String) throws(StorageError) -> StorageStats {
        try database.access { connection throws(StorageError) in
            var stats = StorageStats()
            let totals = try database.statement(totalsSQL, connection: connection)
            defer { totals.reset() }
            if try totals.step() {
                stats.liveKeys = Int(totals.int64(0))
                stats.tombstones = Int(totals.int64(1))
                stats.valueBytes = Int(totals.int64(2))
                stats.keyBytes = Int(totals.int64(3))
            }
            let fileSize = try database.statement(StorageSchema.fileSize, connection: connection)
            defer { fileSize.reset() }
            if try fileSize.step() {
                stats.fileBytes = Int(fileSize.int64(0))
            }
            return stats
        }
    }

    /// Copies the write-ahead log back into the database file now, without waiting for it to
    /// reach ``StorageOptions/checkpointPages``; a node may call this when idle.
    public func checkpoint() throws(StorageError) {
        try database.access { connection throws(StorageError) in
            try database.statement(StorageSchema.checkpoint, connection: connection).run()
        }
    }
}
