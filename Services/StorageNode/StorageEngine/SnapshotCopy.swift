import GRDBSQLite
import Glibc

/// An online copy of the engine's database into a new file: SQLite's backup
/// API on the engine's own connection, a bounded number of pages per
/// ``step(pages:)``, so a node copies a large database in many short pieces
/// between its other work instead of holding its thread for the whole copy.
///
/// The copy is consistent: it is the database as it stands when the last step
/// completes. Writes the engine commits between steps go through the same
/// connection, and SQLite applies them to the pages already copied as they
/// are written; a transaction rolled back after some of its pages reached the
/// write-ahead log makes SQLite restart the copy. (Another connection writing
/// the file would restart it too, but the engine holds the file exclusively.)
///
/// `VACUUM INTO` would give the same consistency in one statement, but on this
/// connection only (the engine's exclusive lock keeps every other connection
/// out), so it would hold the node's thread for the whole copy; running it on
/// another thread would not help, since every write of the node waits for the
/// connection meanwhile.
///
/// The copy is made with `journal_mode = OFF` and no syncs: an interrupted
/// copy is garbage, and its owner deletes it. ``SnapshotFile/seal(path:)``
/// turns a complete copy into a self-contained file. Used on the engine's
/// thread only; the engine ends unfinished copies when it closes.
public final class SnapshotCopy {
    /// The file being written.
    public let path: String
    private let database: EngineDatabase
    private var destination: OpaquePointer?
    private var backup: OpaquePointer?
    private var ended: StorageError?
    /// Whether the last step completed the copy.
    public private(set) var isComplete = false
    /// The source's pages and those still to copy, as of the last step.
    public private(set) var pageCount = 0
    public private(set) var pagesRemaining = 0

    init(database: EngineDatabase, path: String) throws(StorageError) {
        self.database = database
        self.path = path
        guard access(path, F_OK) != 0 else {
            throw StorageError.invalidArgument.with(message: "\(path) exists already; a snapshot goes to a new file")
        }
        var destination: OpaquePointer?
        let opened = sqlite3_open_v2(path, &destination, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nil)
        guard opened == SQLITE_OK, let destination else {
            let error = StorageError.fromSQLite(opened, connection: destination, while: "creating the snapshot \(path)")
            sqlite3_close_v2(destination)
            unlink(path)
            throw error
        }
        self.destination = destination
        let settings = sqlite3_exec(destination, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF", nil, nil, nil)
        guard settings == SQLITE_OK else {
            let error = StorageError.fromSQLite(settings, connection: destination, while: "preparing the snapshot \(path)")
            release(deleting: true)
            throw error
        }
        let started: OpaquePointer?
        do {
            started = try database.access { source in sqlite3_backup_init(destination, "main", source, "main") }
        } catch {
            release(deleting: true)
            throw error
        }
        guard let started else {
            let error = StorageError.fromSQLite(sqlite3_errcode(destination), connection: destination,
                                                while: "starting the copy into \(path)")
            release(deleting: true)
            throw error
        }
        backup = started
        database.beforeClose[ObjectIdentifier(self)] = { [weak self] in
            guard let self else { return }
            ended = StorageError.closed.with(message: "the engine closed while copying into \(path)")
            release(deleting: true)
        }
    }

    deinit {
        if backup != nil || destination != nil {
            try? database.access { _ throws(StorageError) in release(deleting: !isComplete) }
            release(deleting: !isComplete)
        }
    }

    /// Copies up to `pages` more pages (4 KiB each at the engine's page size);
    /// returns `true` once the copy is complete, which a step returns exactly
    /// once. After a failure the copy is abandoned and its file deleted.
    public func step(pages: Int32 = 1024) throws(StorageError) -> Bool {
        if isComplete { return true }
        if let ended { throw ended }
        guard let backup else { throw StorageError.closed.with(message: "the copy into \(path) was abandoned") }
        let outcome: (code: Int32, done: Bool) = try database.access { _ throws(StorageError) in
            let code = sqlite3_backup_step(backup, max(1, pages))
            pageCount = Int(sqlite3_backup_pagecount(backup))
            pagesRemaining = Int(sqlite3_backup_remaining(backup))
            guard code == SQLITE_DONE else { return (code, false) }
            // Ends the backup on the source's side while the connection is held.
            let finished = sqlite3_backup_finish(backup)
            self.backup = nil
            return (finished, true)
        }
        switch outcome.code {
        case SQLITE_OK where outcome.done:
            database.beforeClose[ObjectIdentifier(self)] = nil
            sqlite3_close_v2(destination)
            destination = nil
            isComplete = true
            return true
        case SQLITE_OK, SQLITE_BUSY, SQLITE_LOCKED:
            return false
        default:
            let error = StorageError.fromSQLite(outcome.code, connection: destination, while: "copying into \(path)")
            abandon()
            throw error
        }
    }

    /// Stops an unfinished copy and deletes its file; a complete copy's file stays.
    public func abandon() {
        guard backup != nil || destination != nil else { return }
        if backup != nil {
            try? database.access { _ throws(StorageError) in release(deleting: true) }
        }
        release(deleting: true)
    }

    /// Finishes the backup object (the caller holds the source connection, or it is
    /// closing), closes the destination and, with `deleting`, removes its file.
    private func release(deleting: Bool) {
        if let backup {
            sqlite3_backup_finish(backup)
            self.backup = nil
        }
        database.beforeClose[ObjectIdentifier(self)] = nil
        if let destination {
            sqlite3_close_v2(destination)
            self.destination = nil
            if deleting { unlink(path) }
        }
    }
}

extension StorageEngine {
    /// Starts an online copy of this database into the new file `path` (its
    /// directory must exist); drive it with ``SnapshotCopy/step(pages:)`` on
    /// this engine's thread, then ``SnapshotFile/seal(path:)`` the file.
    public func startSnapshot(to path: String) throws(StorageError) -> SnapshotCopy {
        try SnapshotCopy(database: database, path: path)
    }
}
