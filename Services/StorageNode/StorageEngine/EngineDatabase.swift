import GRDB
import GRDBSQLite

/// The engine's SQLite connection, shared by ``StorageEngine`` and ``HintStore``.
///
/// GRDB opens the file in WAL mode and serialises access; the engine then works on
/// GRDB's raw connection with statements it keeps prepared (``SQLiteStatement``),
/// and commits with its own `BEGIN IMMEDIATE`/`COMMIT`. The connection takes
/// SQLite's exclusive locking mode, so a second process opening the same file (two
/// nodes configured with one data directory) fails with ``StorageError/databaseLocked``
/// instead of sharing it. Used from one thread; closed explicitly or on deinit.
final class EngineDatabase {
    /// The database file.
    let path: String
    private var queue: DatabaseQueue?
    private var statements: [String: SQLiteStatement] = [:]
    /// What must end before the connection closes, by owner: snapshot copies
    /// reading from it (SQLite does not close a connection with a backup running).
    var beforeClose: [ObjectIdentifier: () -> Void] = [:]

    /// Opens (creating if needed) the database at `path` with the given durability, cache and checkpointing.
    init(path: String, options: StorageOptions) throws(StorageError) {
        self.path = path
        var configuration = Configuration()
        configuration.label = "ringstore.storage"
        configuration.journalMode = .wal
        configuration.prepareDatabase { db in
            // Before WAL is entered, so the WAL index lives in heap memory, not a -shm file.
            try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE")
        }
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            self.queue = queue
            try queue.inDatabase { db in
                let synchronous = options.sync == .full ? "FULL" : "NORMAL"
                let checkpointPages = max(options.checkpointPages, 1)
                try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
                try db.execute(sql: "PRAGMA cache_size = \(-max(options.cacheKibibytes, 1024))")
                try db.execute(sql: "PRAGMA wal_autocheckpoint = \(checkpointPages)")
                // After a checkpoint, the log file is truncated back to about that size.
                try db.execute(sql: "PRAGMA journal_size_limit = \(checkpointPages * 4096)")
                let version = try Int64.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                guard version <= StorageSchema.version else {
                    throw StorageError.incompatibleSchema.with(
                        message: "\(path) has schema version \(version); this engine knows up to \(StorageSchema.version)"
                    )
                }
                try db.inTransaction(.immediate) {
                    if version > 0 {
                        for step in version..<StorageSchema.version {
                            if let upgrade = StorageSchema.upgrades[step] { try db.execute(sql: upgrade) }
                        }
                    }
                    try db.execute(sql: StorageSchema.create)
                    if try Int64.fetchOne(db, sql: StorageSchema.totalsFilled) == 0 {
                        try db.execute(sql: StorageSchema.totalsFill)
                    }
                    try db.execute(sql: "PRAGMA user_version = \(StorageSchema.version)")
                    return .commit
                }
            }
        } catch let error as StorageError {
            try? queue?.close()
            throw error
        } catch let error as DatabaseError {
            try? queue?.close()
            let code = error.extendedResultCode.rawValue
            let kind: StorageError = error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
                ? .databaseLocked : .sqlite
            throw kind.with(message: "opening \(path): \(error.message ?? "\(error)") (\(code))", sqliteCode: code)
        } catch {
            try? queue?.close()
            throw StorageError.sqlite.with(message: "opening \(path): \(error)")
        }
    }

    deinit {
        try? close()
    }

    /// Whether ``close()`` has run.
    var isClosed: Bool { queue == nil }

    /// Finalises the prepared statements and closes the connection; later calls do nothing.
    func close() throws(StorageError) {
        guard let queue else { return }
        self.queue = nil
        let outcome: Result<Void, StorageError> = queue.inDatabase { _ in
            for end in beforeClose.values { end() }
            beforeClose.removeAll()
            for statement in statements.values { statement.finalize() }
            statements.removeAll()
            return .success(())
        }
        try outcome.get()
        do {
            try queue.close()
        } catch {
            throw StorageError.sqlite.with(message: "closing \(path): \(error)")
        }
    }

    /// Runs `body` on the raw connection, outside any transaction.
    func access<Value>(_ body: (OpaquePointer) throws(StorageError) -> Value) throws(StorageError) -> Value {
        guard let queue else { throw StorageError.closed.with(message: "\(path) is closed") }
        let outcome: Result<Value, StorageError> = queue.inDatabase { db in
            guard let connection = db.sqliteConnection else {
                return .failure(StorageError.closed.with(message: "\(path) is closed"))
            }
            do throws(StorageError) {
                return .success(try body(connection))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    /// Runs `body` in one write transaction: committed when it returns, rolled back when it throws.
    func transaction<Value>(_ body: (OpaquePointer) throws(StorageError) -> Value) throws(StorageError) -> Value {
        try access { connection throws(StorageError) in
            try statement(StorageSchema.begin, connection: connection).run()
            do throws(StorageError) {
                let value = try body(connection)
                try statement(StorageSchema.commit, connection: connection).run()
                return value
            } catch {
                // Some failures (I/O, full disk) already rolled the transaction back.
                if sqlite3_get_autocommit(connection) == 0 {
                    try? statement(StorageSchema.rollback, connection: connection).run()
                }
                throw error
            }
        }
    }

    /// The statement for `sql`, prepared on first use and kept for the life of the connection.
    func statement(_ sql: String, connection: OpaquePointer) throws(StorageError) -> SQLiteStatement {
        if let statement = statements[sql] { return statement }
        let statement = try SQLiteStatement(sql: sql, connection: connection)
        statements[sql] = statement
        return statement
    }
}
