import Ring

/// A storage node's durable store of versioned records: one SQLite database in WAL mode.
///
/// Rows are clustered by ring position, so an arc of the ring is one range scan
/// (``scan(arc:after:limit:)``, ``count(arc:)``, ``deleteArc(_:)``). Writes are
/// merges: ``apply(_:)`` keeps, per key, the record with the greatest version, in
/// one transaction per batch (group commit: the node applies every write of a
/// reactor turn at once). Durability per commit follows the ``SyncMode``.
/// Hinted handoff keeps its hints in the same file (``hints``).
///
/// The engine is used from one thread, the node's reactor; it is not `Sendable`.
/// It closes with ``close()`` or when released.
public final class StorageEngine {
    /// The database file.
    public var path: String { database.path }
    /// The options the database was opened with.
    public let options: StorageOptions
    /// How hard each commit pushes data to disk.
    public var syncMode: SyncMode { options.sync }
    /// Durable hints for unreachable replicas, stored in the same database.
    public let hints: HintStore
    /// Durable cursors of outgoing migration transfers, in the same database.
    public let migrationCursors: MigrationCursorStore

    let database: EngineDatabase

    /// Opens the database at `path`, creating it and its tables if needed.
    ///
    /// - Parameters:
    ///   - path: The database file; its directory must exist. SQLite adds `<path>-wal`.
    ///   - options: Durability, cache and checkpointing; see ``StorageOptions``.
    /// - Throws: ``StorageError/databaseLocked`` when another process has the file open,
    ///   ``StorageError/incompatibleSchema`` for a file from a newer engine,
    ///   ``StorageError/sqlite`` when the file cannot be opened or is not a database.
    public init(path: String, options: StorageOptions = StorageOptions()) throws(StorageError) {
        guard !path.isEmpty else {
            throw StorageError.invalidArgument.with(message: "the database path is empty")
        }
        database = try EngineDatabase(path: path, options: options)
        self.options = options
        hints = HintStore(database: database)
        migrationCursors = MigrationCursorStore(database: database)
    }

    /// Opens the database at `path` with the default options but the given sync mode.
    public convenience init(path: String, sync: SyncMode) throws(StorageError) {
        try self.init(path: path, options: StorageOptions(sync: sync))
    }

    deinit {
        try? database.close()
    }

    /// Closes the database; the engine and its ``hints`` then throw ``StorageError/closed``.
    /// Closing twice does nothing.
    public func close() throws(StorageError) {
        try database.close()
    }

    /// Whether ``close()`` has run.
    public var isClosed: Bool { database.isClosed }

    // MARK: Writes

    /// Merges a batch of records in one transaction and returns, for each record in order,
    /// whether it was written or the stored version was newer or equal.
    ///
    /// Merging keeps the greatest version per key, so applying the same records again
    /// changes nothing, and any order of the same set of versions, within or across
    /// batches, ends in the same state. A record may be a tombstone (a delete). When the
    /// call returns, the batch is committed as durably as ``syncMode`` promises; when it
    /// throws, nothing of the batch is stored.
    ///
    /// A fenced record (one carrying ``VersionedRecord/fence``) is refused, whatever path
    /// brought it (a client's write, a hint, migration, anti-entropy, read repair), when
    /// this replica has seen a higher token for its lock on its key; otherwise its token
    /// is remembered in the same transaction. So a stale holder's write is refused
    /// everywhere its successor's record (or token) has arrived.
    @discardableResult
    public func apply(_ batch: [VersionedRecord]) throws(StorageError) -> [ApplyResult] {
        try database.transaction { connection throws(StorageError) in
            let stored = try database.statement(StorageSchema.selectStored, connection: connection)
            let upsert = try database.statement(StorageSchema.upsertRecord, connection: connection)
            var results = [ApplyResult](repeating: .applied, count: batch.count)
            var change = TotalsChange()
            for index in Self.ringOrder(of: batch) {
                let record = batch[index]
                if let fence = record.fence {
                    if let highest = try fenceToken(key: record.key, name: fence.name, connection: connection),
                       highest > fence.token {
                        results[index] = .refused(highest: highest)
                        continue
                    }
                    try rememberFence(key: record.key, fence: fence, connection: connection)
                }
                let previous = try stored.queryKey(position: record.position, key: record.key) {
                    () throws(StorageError) -> (version: Version, valueBytes: Int?) in
                    (try stored.version(at: 0), stored.isNull(2) ? nil : Int(stored.int64(2)))
                }
                try upsert.execute(binding: record, from: 1)
                if upsert.changes == 0 {
                    guard let previous else {
                        throw StorageError.sqlite.with(message: "a merge kept a stored row that cannot be read back")
                    }
                    results[index] = .superseded(stored: previous.version)
                } else {
                    change.add(keyBytes: record.key.count, valueBytes: record.value?.count)
                    if let previous { change.remove(keyBytes: record.key.count, valueBytes: previous.valueBytes) }
                }
            }
            try change.write(with: database.statement(StorageSchema.addToTotals, connection: connection))
            return results
        }
    }

    /// What a batch's merges change in `record_totals`, written once at the end of its transaction.
    private struct TotalsChange {
        var liveKeys: Int64 = 0
        var tombstones: Int64 = 0
        var valueBytes: Int64 = 0
        var keyBytes: Int64 = 0

        /// A row now stored: a live value of `valueBytes`, or a tombstone when `nil`.
        mutating func add(keyBytes key: Int, valueBytes value: Int?) {
            if let value {
                liveKeys += 1
                valueBytes += Int64(value)
            } else {
                tombstones += 1
            }
            keyBytes += Int64(key)
        }

        /// A row replaced by a merge.
        mutating func remove(keyBytes key: Int, valueBytes value: Int?) {
            if let value {
                liveKeys -= 1
                valueBytes -= Int64(value)
            } else {
                tombstones -= 1
            }
            keyBytes -= Int64(key)
        }

        func write(with statement: SQLiteStatement) throws(StorageError) {
            guard liveKeys != 0 || tombstones != 0 || valueBytes != 0 || keyBytes != 0 else { return }
            defer { statement.reset() }
            try statement.bind(liveKeys, at: 1)
            try statement.bind(tombstones, at: 2)
            try statement.bind(valueBytes, at: 3)
            try statement.bind(keyBytes, at: 4)
            try statement.run()
        }
    }

    /// The indices of `batch` in ring order (position, then key, then index, so that
    /// records of one key keep their order): B-tree seeks then walk forward through
    /// neighbouring pages instead of jumping around the file.
    static func ringOrder(of batch: [VersionedRecord]) -> [Int] {
        guard batch.count > 1 else { return Array(batch.indices) }
        return batch.indices.sorted { lhs, rhs in
            let left = batch[lhs]
            let right = batch[rhs]
            if left.position != right.position { return left.position < right.position }
            if left.key != right.key { return left.key.lexicographicallyPrecedes(right.key) }
            return lhs < rhs
        }
    }

    // MARK: Reads

    /// The stored record of `key`, a tombstone if it was deleted, or `nil` if the key is unknown.
    ///
    /// Tombstones are returned so that a coordinator can compare versions across
    /// replicas; it answers NOT_FOUND for them. Throws ``StorageError/emptyKey`` for an empty key.
    public func get(key: [UInt8]) throws(StorageError) -> VersionedRecord? {
        let position = try Self.position(of: key)
        return try database.access { connection throws(StorageError) in
            try read(key: key, position: position, with: database.statement(StorageSchema.selectRecord, connection: connection))
        }
    }

    /// The stored records of several keys, in order (`nil` for unknown keys), read in one
    /// database access: the batched form of ``get(key:)`` for a reactor turn's reads.
    public func get(keys: [[UInt8]]) throws(StorageError) -> [VersionedRecord?] {
        var positions: [UInt32] = []
        positions.reserveCapacity(keys.count)
        for key in keys {
            positions.append(try Self.position(of: key))
        }
        return try database.access { connection throws(StorageError) in
            let select = try database.statement(StorageSchema.selectRecord, connection: connection)
            var records: [VersionedRecord?] = []
            records.reserveCapacity(keys.count)
            for (key, position) in zip(keys, positions) {
                records.append(try read(key: key, position: position, with: select))
            }
            return records
        }
    }

    /// One key's record through the prepared point-read statement.
    private func read(key: [UInt8], position: UInt32, with select: SQLiteStatement) throws(StorageError) -> VersionedRecord? {
        try select.queryKey(position: position, key: key) { () throws(StorageError) in
            let value = select.blob(0)
            guard value != nil || select.isNull(0) else {
                throw StorageError.corruptRow.with(message: "the value at position \(position) is not a blob")
            }
            return VersionedRecord(key: key, position: position, value: value, version: try select.version(at: 1),
                                   fence: try select.fence(at: 3))
        }
    }

    /// The ring position of `key`; ``StorageError/emptyKey`` when it is empty.
    static func position(of key: [UInt8]) throws(StorageError) -> UInt32 {
        do {
            return try HashRing.position(forKey: key)
        } catch {
            throw StorageError.emptyKey.with(message: "a key needs at least one byte")
        }
    }
}
