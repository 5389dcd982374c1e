import ControlPlane
import Foundation
import GRDB

/// The lock service's durable state in SQLite: one row per lock name the
/// service remembers, with its latest token and its holder, and the service's
/// token counter (`meta.last_token`), which outlives forgotten names.
///
/// WAL mode with `synchronous = FULL`: a commit returns once it is on disk,
/// and the server answers a grant, a ttl change or a release only after the
/// commit of its reactor turn (one transaction for the whole turn). The
/// connection holds SQLite's exclusive lock, so a second lock service started
/// on the same data directory fails instead of handing out the same locks.
public final class LockStore {
    /// The database file.
    public let path: String
    private var queue: DatabaseQueue?
    /// Commits so far, for Health and tests.
    public private(set) var commits = 0
    /// The token counter as last read or written: a change of the counter
    /// alone (a restore raising it) is a change to write too.
    private var savedLastToken: UInt64?

    static let schema = """
        CREATE TABLE IF NOT EXISTS locks (
            name TEXT PRIMARY KEY NOT NULL,
            last_token INTEGER NOT NULL,
            owner TEXT,
            token INTEGER,
            ttl_us INTEGER,
            guard_ttl_us INTEGER,
            expires_unix_micros INTEGER,
            session TEXT
        ) WITHOUT ROWID
        """
    /// Version 3 binds a lease to the CURVE key that acquired it.
    static let addSession = "ALTER TABLE locks ADD COLUMN session TEXT"
    /// Version 2 added it; a version 1 store's counter is the highest
    /// `last_token` of its rows, which `LockTable(restoring:)` takes into account.
    static let metaSchema = """
        CREATE TABLE IF NOT EXISTS meta (
            key TEXT PRIMARY KEY NOT NULL,
            value INTEGER NOT NULL
        ) WITHOUT ROWID
        """
    static let upsert = """
        INSERT OR REPLACE INTO locks (name, last_token, owner, token, ttl_us, guard_ttl_us, expires_unix_micros, session)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """
    static let delete = "DELETE FROM locks WHERE name = ?"
    static let saveLastToken = "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_token', ?)"
    static let version: Int64 = 3

    /// Opens (creating if needed) `locks.sqlite` in `directory`.
    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("locks.sqlite").path
        var configuration = Configuration()
        configuration.label = "ringstore.lock"
        configuration.journalMode = .wal
        configuration.busyMode = .immediateError
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE")
        }
        let queue: DatabaseQueue
        do {
            queue = try DatabaseQueue(path: path, configuration: configuration)
        } catch {
            throw LockStoreError("cannot open \(path): \(Self.describe(error))")
        }
        do {
            try queue.inDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                let version = try Int64.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                guard version <= Self.version else {
                    throw LockStoreError("\(path) has schema version \(version); this lock service knows up to \(Self.version)")
                }
                // Takes the exclusive lock now, not at the first grant.
                try db.inTransaction(.immediate) {
                    if version > 0 && version < 3 { try db.execute(sql: Self.addSession) }
                    try db.execute(sql: Self.schema)
                    try db.execute(sql: Self.metaSchema)
                    try db.execute(sql: "PRAGMA user_version = \(Self.version)")
                    return .commit
                }
            }
        } catch let error as LockStoreError {
            try? queue.close()
            throw error
        } catch {
            try? queue.close()
            throw LockStoreError("cannot open \(path): \(Self.describe(error)) (is another lock service using this data directory?)")
        }
        self.queue = queue
    }

    deinit { close() }

    /// Closes the database; later calls fail.
    public func close() {
        try? queue?.close()
        queue = nil
    }

    /// Every persisted lock.
    public func load() throws -> [LockRecord] {
        guard let queue else { throw LockStoreError("\(path) is closed") }
        return try queue.inDatabase { db in
            try Row.fetchAll(db, sql: "SELECT name, last_token, owner, token, ttl_us, guard_ttl_us, expires_unix_micros, session FROM locks").map { row in
                let name: String = row[0]
                let lastToken = UInt64(bitPattern: row[1] as Int64)
                var holder: LockRecord.Holder?
                if let owner: String = row[2], let token: Int64 = row[3] {
                    let ttl = Duration.microseconds(row[4] as Int64? ?? 0)
                    let guardTTL = Duration.microseconds(row[5] as Int64? ?? 0)
                    holder = LockRecord.Holder(owner: owner, token: UInt64(bitPattern: token), ttl: ttl,
                                               guardTTL: max(ttl, guardTTL), expiresWallMicros: row[6] as Int64? ?? 0,
                                               session: row[7] as String?)
                }
                return LockRecord(name: name, lastToken: lastToken, holder: holder)
            }
        }
    }

    /// The service's token counter: the highest token ever issued (0 for a
    /// new store, or one written before the counter existed).
    public func loadLastToken() throws -> UInt64 {
        guard let queue else { throw LockStoreError("\(path) is closed") }
        let token = try queue.inDatabase { db in
            (try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'last_token'")).map { UInt64(bitPattern: $0) } ?? 0
        }
        savedLastToken = token
        return token
    }

    /// Writes `changes` in one transaction (changed rows, forgotten names
    /// deleted, the token counter); returns once they are on disk.
    public func save(_ changes: LockChanges) throws(LockStoreError) {
        guard !changes.isEmpty || changes.lastToken != savedLastToken else { return }
        guard let queue else { throw LockStoreError("\(path) is closed") }
        let records = changes.records
        do {
            try queue.inDatabase { db in
                try db.inTransaction(.immediate) {
                    // Always with the rows: a forgotten name's row goes, so the
                    // counter must hold its tokens from this commit on.
                    try db.cachedStatement(sql: Self.saveLastToken).execute(arguments: [Int64(bitPattern: changes.lastToken)])
                    let remove = try db.cachedStatement(sql: Self.delete)
                    for name in changes.forgotten {
                        try remove.execute(arguments: [name])
                    }
                    let statement = try db.cachedStatement(sql: Self.upsert)
                    for record in records {
                        let holder = record.holder
                        try statement.execute(arguments: [
                            record.name,
                            Int64(bitPattern: record.lastToken),
                            holder?.owner,
                            holder.map { Int64(bitPattern: $0.token) },
                            holder?.ttl.wholeMicroseconds,
                            holder?.guardTTL.wholeMicroseconds,
                            holder?.expiresWallMicros,
                            holder?.session,
                        ])
                    }
                    return .commit
                }
            }
        } catch {
            throw LockStoreError("cannot write \(records.count) lock records and \(changes.forgotten.count) removals to \(path): \(Self.describe(error))")
        }
        savedLastToken = changes.lastToken
        commits += 1
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error)" }
        return "\(error)"
    }
}

/// The lock store could not be opened, read or written.
public struct LockStoreError: Error, CustomStringConvertible {
    public let description: String
    /// For the etcd store: how the write failed (whether this replica still leads).
    public var write: ReplicatedWriteError?
    init(_ description: String) { self.description = description }
}
