import GRDBSQLite

/// SQLite's `SQLITE_TRANSIENT` destructor: SQLite copies the bytes before the bind returns.
private let transientDestructor = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// A prepared statement stepped directly through SQLite's C API.
///
/// The engine keeps its statements prepared for the life of the connection and
/// drives them with `sqlite3_bind_*`/`sqlite3_step`, skipping GRDB's
/// per-statement argument handling, which costs several times the insert itself
/// on the write path. Blobs are bound without a copy (`SQLITE_STATIC`), so a
/// caller binds them inside a scope that keeps the bytes alive and resets the
/// statement before leaving it; ``reset()`` also clears the bindings, so no
/// dangling pointer outlives that scope.
final class SQLiteStatement {
    /// The SQL text, for error messages.
    let sql: String
    private let connection: OpaquePointer
    private var handle: OpaquePointer?

    /// Compiles `sql` on `connection`, as a long-lived statement.
    init(sql: String, connection: OpaquePointer) throws(StorageError) {
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard code == SQLITE_OK, let statement else {
            sqlite3_finalize(statement)
            throw StorageError.fromSQLite(code, connection: connection, while: "preparing \(sql)")
        }
        self.sql = sql
        self.connection = connection
        self.handle = statement
    }

    deinit {
        sqlite3_finalize(handle)
    }

    /// Releases the compiled statement; the connection cannot close while statements remain.
    func finalize() {
        sqlite3_finalize(handle)
        handle = nil
    }

    // MARK: Binding (1-based parameter indices)

    /// Binds an integer.
    func bind(_ value: Int64, at index: Int32) throws(StorageError) {
        try check(sqlite3_bind_int64(handle, index, value), "binding parameter \(index)")
    }

    /// Binds a blob without copying it: `bytes` must stay valid until ``reset()``.
    /// An empty buffer binds an empty blob, not NULL.
    func bind(_ bytes: UnsafeRawBufferPointer, at index: Int32) throws(StorageError) {
        let code: Int32
        if let base = bytes.baseAddress, !bytes.isEmpty {
            code = sqlite3_bind_blob64(handle, index, base, sqlite3_uint64(bytes.count), nil)
        } else {
            code = sqlite3_bind_zeroblob(handle, index, 0)
        }
        try check(code, "binding a blob of \(bytes.count) bytes to parameter \(index)")
    }

    /// Binds NULL.
    func bindNull(at index: Int32) throws(StorageError) {
        try check(sqlite3_bind_null(handle, index), "binding parameter \(index)")
    }

    /// Binds text, copied by SQLite.
    func bind(_ text: String, at index: Int32) throws(StorageError) {
        let code = text.withCString { sqlite3_bind_text(handle, index, $0, -1, transientDestructor) }
        try check(code, "binding parameter \(index)")
    }

    // MARK: Stepping

    /// Steps once: `true` when a row is available, `false` when the statement is done.
    func step() throws(StorageError) -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code: throw StorageError.fromSQLite(code, connection: connection, while: "running \(sql)")
        }
    }

    /// Runs a statement that returns no rows, then resets it.
    func run() throws(StorageError) {
        defer { reset() }
        while try step() {}
    }

    /// Rewinds the statement and clears its bindings, so it holds no pointer into caller memory.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE on the connection.
    var changes: Int {
        Int(sqlite3_changes(connection))
    }

    /// The rowid of the last row inserted on the connection.
    var lastInsertedRowID: Int64 {
        sqlite3_last_insert_rowid(connection)
    }

    // MARK: Columns of the current row (0-based indices)

    /// Whether the column is NULL.
    func isNull(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }

    /// Whether the column holds an integer.
    func isInteger(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_INTEGER
    }

    /// The column as an integer.
    func int64(_ column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    /// The column as a blob, or `nil` when it is not a blob.
    func blob(_ column: Int32) -> [UInt8]? {
        guard sqlite3_column_type(handle, column) == SQLITE_BLOB else { return nil }
        let base = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        guard let base, count > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The column as text, or `nil` when it is not text.
    func text(_ column: Int32) -> String? {
        guard sqlite3_column_type(handle, column) == SQLITE_TEXT, let text = sqlite3_column_text(handle, column) else {
            return nil
        }
        return String(cString: text)
    }

    private func check(_ code: Int32, _ action: @autoclosure () -> String) throws(StorageError) {
        guard code == SQLITE_OK else {
            throw StorageError.fromSQLite(code, connection: connection, while: "\(action()) of \(sql)")
        }
    }
}

extension StorageError {
    /// The one funnel from SQLite result codes to typed errors: busy and locked mean another
    /// connection owns the database, anything else is an SQLite failure with SQLite's message.
    static func fromSQLite(_ code: Int32, connection: OpaquePointer?, while action: String) -> StorageError {
        let primary = code & 0xff
        let text = connection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
            ?? String(cString: sqlite3_errstr(code))
        let kind: StorageError = primary == SQLITE_BUSY || primary == SQLITE_LOCKED ? .databaseLocked : .sqlite
        return kind.with(message: "\(text) (\(code)) while \(action)", sqliteCode: code)
    }
}
