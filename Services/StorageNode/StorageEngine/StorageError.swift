/// Why the storage engine refused a request or could not carry it out.
///
/// A struct around a private code, so that new failure kinds can be added
/// without breaking callers. Compare against the static constants
/// (`error == .emptyKey`); equality looks at the kind only, while ``message``
/// says what exactly went wrong for people to read.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: String, Hashable, Sendable {
        case emptyKey = "empty key"
        case invalidArgument = "invalid argument"
        case closed = "storage engine closed"
        case databaseLocked = "database locked"
        case incompatibleSchema = "incompatible schema"
        case corruptRow = "corrupt row"
        case sqlite = "SQLite error"
        case io = "I/O error"
    }

    private let code: Code

    /// What went wrong, for logs and error replies; not part of equality.
    public let message: String

    /// The SQLite result code behind a ``sqlite`` or ``databaseLocked`` error, if any.
    public let sqliteCode: Int32?

    private init(_ code: Code, _ message: String = "", sqliteCode: Int32? = nil) {
        self.code = code
        self.message = message
        self.sqliteCode = sqliteCode
    }

    /// Keys must hold at least one byte.
    public static let emptyKey = StorageError(.emptyKey)
    /// An argument is out of range: a limit below 1, a cursor outside its arc, a malformed value.
    public static let invalidArgument = StorageError(.invalidArgument)
    /// The engine (or the hint store sharing its database) was used after ``StorageEngine/close()``.
    public static let closed = StorageError(.closed)
    /// Another connection, usually another process, holds the database: one node owns one database.
    public static let databaseLocked = StorageError(.databaseLocked)
    /// The database file was written by a newer, unknown version of the engine.
    public static let incompatibleSchema = StorageError(.incompatibleSchema)
    /// A stored row does not have the shape the engine writes (a column of the wrong type).
    public static let corruptRow = StorageError(.corruptRow)
    /// SQLite failed: I/O error, full disk, corrupt file, oversize blob; ``sqliteCode`` says which.
    public static let sqlite = StorageError(.sqlite)
    /// Reading or writing a file outside SQLite failed (a snapshot's): ``message`` says which and why.
    public static let io = StorageError(.io)

    /// The same kind of error with a description of what went wrong.
    func with(message: String, sqliteCode: Int32? = nil) -> StorageError {
        StorageError(code, message, sqliteCode: sqliteCode ?? self.sqliteCode)
    }

    /// Errors are equal when they are of the same kind, whatever their messages.
    public static func == (lhs: StorageError, rhs: StorageError) -> Bool {
        lhs.code == rhs.code
    }

    /// Hashes the kind only, consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }

    /// The kind of error, then the message, e.g. `SQLite error: disk I/O error (10) while committing`.
    public var description: String {
        message.isEmpty ? code.rawValue : "\(code.rawValue): \(message)"
    }
}
