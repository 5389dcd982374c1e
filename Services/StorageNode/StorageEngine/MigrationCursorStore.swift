/// Where a migration transfer got to: the arc it is in, the last record the
/// receiver confirmed, and the totals sent so far. Saved after every confirmed
/// batch, so a sender that restarts resumes from there.
public struct MigrationCursor: Equatable, Sendable {
    /// Index of the arc being sent in the transfer's arc list.
    public var arcIndex: Int
    /// The last confirmed record of that arc; `nil`: from the arc's start.
    public var after: ScanCursor?
    /// Records and bytes confirmed so far over the whole transfer.
    public var keys: Int
    public var bytes: Int

    public init(arcIndex: Int = 0, after: ScanCursor? = nil, keys: Int = 0, bytes: Int = 0) {
        self.arcIndex = arcIndex
        self.after = after
        self.keys = keys
        self.bytes = bytes
    }
}

/// Durable migration cursors, one per outgoing transfer, in the engine's database.
public final class MigrationCursorStore {
    private let database: EngineDatabase

    init(database: EngineDatabase) {
        self.database = database
    }

    /// Saves the cursor of transfer `id` (one small transaction).
    public func save(_ cursor: MigrationCursor, transfer id: UInt64) throws(StorageError) {
        try database.transaction { connection throws(StorageError) in
            let upsert = try database.statement(StorageSchema.upsertCursor, connection: connection)
            try upsert.bind(Int64(bitPattern: id), at: 1)
            try upsert.bind(Int64(cursor.arcIndex), at: 2)
            if let after = cursor.after {
                try upsert.bind(Int64(after.position), at: 3)
                try withBytes(after.key) { key throws(StorageError) in
                    try upsert.bind(key, at: 4)
                    try upsert.bind(Int64(cursor.keys), at: 5)
                    try upsert.bind(Int64(cursor.bytes), at: 6)
                    try upsert.run()
                }
            } else {
                try upsert.bindNull(at: 3)
                try upsert.bindNull(at: 4)
                try upsert.bind(Int64(cursor.keys), at: 5)
                try upsert.bind(Int64(cursor.bytes), at: 6)
                try upsert.run()
            }
        }
    }

    /// The saved cursor of transfer `id`, if any.
    public func load(transfer id: UInt64) throws(StorageError) -> MigrationCursor? {
        try database.access { connection throws(StorageError) in
            let select = try database.statement(StorageSchema.selectCursor, connection: connection)
            defer { select.reset() }
            try select.bind(Int64(bitPattern: id), at: 1)
            guard try select.step() else { return nil }
            var cursor = MigrationCursor(arcIndex: Int(select.int64(0)), keys: Int(select.int64(3)), bytes: Int(select.int64(4)))
            if !select.isNull(1), let key = select.blob(2) {
                cursor.after = ScanCursor(position: UInt32(truncatingIfNeeded: select.int64(1)), key: key)
            }
            return cursor
        }
    }

    /// The transfers with a saved cursor.
    public func transferIDs() throws(StorageError) -> [UInt64] {
        try database.access { connection throws(StorageError) in
            let select = try database.statement(StorageSchema.selectCursorIDs, connection: connection)
            defer { select.reset() }
            var ids: [UInt64] = []
            while try select.step() { ids.append(UInt64(bitPattern: select.int64(0))) }
            return ids
        }
    }

    /// Forgets transfer `id` (done or cancelled).
    public func remove(transfer id: UInt64) throws(StorageError) {
        try database.transaction { connection throws(StorageError) in
            let delete = try database.statement(StorageSchema.deleteCursor, connection: connection)
            try delete.bind(Int64(bitPattern: id), at: 1)
            try delete.run()
        }
    }
}
