import GRDBSQLite
import Glibc

/// What a sealed snapshot holds: its size and checksum, and the rows of its
/// `records` table holding a value and holding a tombstone.
public struct SnapshotSummary: Hashable, Sendable {
    public var sizeBytes: Int
    /// SHA-256 of the file, 64 lowercase hex digits.
    public var sha256: String
    public var liveKeys: Int
    public var tombstones: Int

    public init(sizeBytes: Int, sha256: String, liveKeys: Int, tombstones: Int) {
        self.sizeBytes = sizeBytes
        self.sha256 = sha256
        self.liveKeys = liveKeys
        self.tombstones = tombstones
    }
}

/// Snapshot files outside the engine's connection: sealing a complete copy
/// and reading it in chunks. Blocking file work, safe on any thread (each
/// call opens what it needs), so a node runs ``seal(path:)`` off its reactor.
public enum SnapshotFile {
    /// Makes a complete ``SnapshotCopy`` a self-contained database and describes it:
    /// takes it out of WAL mode (the copied header says WAL, as the node's
    /// database is), checks it with SQLite's `quick_check`, counts its records
    /// and hashes the file. Throws when the file is not a sound engine database.
    public static func seal(path: String) throws(StorageError) -> SnapshotSummary {
        let (live, tombstones) = try checkAndCount(path: path)
        let (sha256, bytes) = try SHA256Hasher.file(at: path)
        return SnapshotSummary(sizeBytes: bytes, sha256: sha256, liveKeys: live, tombstones: tombstones)
    }

    /// The database part of ``seal(path:)``, with the connection closed when it returns.
    private static func checkAndCount(path: String) throws(StorageError) -> (live: Int, tombstones: Int) {
        let connection = try open(path, flags: SQLITE_OPEN_READWRITE)
        defer { sqlite3_close_v2(connection) }
        let mode = sqlite3_exec(connection, "PRAGMA journal_mode = DELETE", nil, nil, nil)
        guard mode == SQLITE_OK else {
            throw StorageError.fromSQLite(mode, connection: connection, while: "taking \(path) out of WAL mode")
        }
        let check = try SQLiteStatement(sql: "PRAGMA quick_check", connection: connection)
        defer { check.finalize() }
        guard try check.step(), check.text(0) == "ok" else {
            throw StorageError.corruptRow.with(message: "\(path) fails SQLite's quick_check: \(check.text(0) ?? "no answer")")
        }
        check.reset()
        return try counts(connection, path: path)
    }

    /// Up to `maxBytes` of the file at `path` from `offset`; fewer only at its end.
    public static func read(path: String, offset: Int, maxBytes: Int) throws(StorageError) -> [UInt8] {
        let file = try SnapshotIO.openForReading(path)
        defer { SnapshotIO.close(file) }
        var buffer = [UInt8](repeating: 0, count: max(0, maxBytes))
        let count = try SnapshotIO.read(file, into: &buffer, at: Int64(offset), path: path)
        buffer.removeLast(buffer.count - count)
        return buffer
    }

    /// Opens a snapshot with SQLite; `flags` without `SQLITE_OPEN_CREATE`, so a missing file is an error.
    static func open(_ path: String, flags: Int32) throws(StorageError) -> OpaquePointer {
        var connection: OpaquePointer?
        let code = sqlite3_open_v2(path, &connection, flags, nil)
        guard code == SQLITE_OK, let connection else {
            let error = StorageError.fromSQLite(code, connection: connection, while: "opening the snapshot \(path)")
            sqlite3_close_v2(connection)
            throw error
        }
        do {
            try checkSchema(connection, path: path)
        } catch {
            sqlite3_close_v2(connection)
            throw error
        }
        return connection
    }

    /// Refuses a file that is not an engine database this code can read (records with fence columns).
    private static func checkSchema(_ connection: OpaquePointer, path: String) throws(StorageError) {
        let version = try SQLiteStatement(sql: "PRAGMA user_version", connection: connection)
        defer { version.finalize() }
        let schema = try version.step() ? version.int64(0) : 0
        guard (2...StorageSchema.version).contains(schema) else {
            throw StorageError.incompatibleSchema.with(
                message: "\(path) has schema version \(schema); a node snapshot has 2 to \(StorageSchema.version)")
        }
    }

    /// Live rows and tombstones of `records`, counted from the rows.
    static func counts(_ connection: OpaquePointer, path: String) throws(StorageError) -> (live: Int, tombstones: Int) {
        let count = try SQLiteStatement(sql: "SELECT count(value), count(*) - count(value) FROM records", connection: connection)
        defer { count.finalize() }
        guard try count.step() else { return (0, 0) }
        return (Int(count.int64(0)), Int(count.int64(1)))
    }
}

/// Plain file reads (POSIX), with errors as ``StorageError/io``.
enum SnapshotIO {
    static func openForReading(_ path: String) throws(StorageError) -> Int32 {
        while true {
            let file = Glibc.open(path, O_RDONLY | O_CLOEXEC)
            if file >= 0 { return file }
            if errno != EINTR { throw failure("opening \(path)") }
        }
    }

    /// Reads into `buffer` from `offset` until it is full or the file ends; returns the bytes read.
    static func read(_ file: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64, path: String) throws(StorageError) -> Int {
        var filled = 0
        while filled < buffer.count {
            let count = pread(file, buffer.baseAddress! + filled, buffer.count - filled, off_t(offset) + off_t(filled))
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("reading \(path) at \(offset + Int64(filled))")
            }
            filled += count
        }
        return filled
    }

    /// ``read(_:into:at:path:)`` into the whole of `array`.
    static func read(_ file: Int32, into array: inout [UInt8], at offset: Int64, path: String) throws(StorageError) -> Int {
        let outcome: Result<Int, StorageError> = array.withUnsafeMutableBytes { block in
            do throws(StorageError) {
                return .success(try read(file, into: block, at: offset, path: path))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    static func close(_ file: Int32) {
        _ = Glibc.close(file)
    }

    static func failure(_ operation: String) -> StorageError {
        StorageError.io.with(message: "\(operation): \(String(cString: strerror(errno)))")
    }
}
