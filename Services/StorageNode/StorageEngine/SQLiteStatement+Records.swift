/// Binding and reading ``VersionedRecord``s, the shape shared by `records` and `hints`.
extension SQLiteStatement {
    /// Binds `record` as (position, key, value, ts, writer, fence_name, fence_token) from parameter `first`, runs the
    /// statement to completion and resets it; the key and value bytes are not copied.
    func execute(binding record: VersionedRecord, from first: Int32) throws(StorageError) {
        defer { reset() }
        try withBytes(record.key) { key throws(StorageError) in
            try withOptionalBytes(record.value) { value throws(StorageError) in
                try bind(Int64(record.position), at: first)
                try bind(key, at: first + 1)
                if let value {
                    try bind(value, at: first + 2)
                } else {
                    try bindNull(at: first + 2)
                }
                try bind(StorageSchema.stored(record.version.timestamp), at: first + 3)
                try bind(StorageSchema.stored(record.version.writer), at: first + 4)
                if let fence = record.fence {
                    try bind(fence.name, at: first + 5)
                    try bind(Int64(bitPattern: fence.token), at: first + 6)
                } else {
                    try bindNull(at: first + 5)
                    try bindNull(at: first + 6)
                }
                while try step() {}
            }
        }
    }

    /// Binds `position` and `key` to parameters 1 and 2, steps once and, when there is a row,
    /// returns `read` of it; the statement is reset before returning.
    func queryKey<Row>(
        position: UInt32,
        key: [UInt8],
        _ read: () throws(StorageError) -> Row
    ) throws(StorageError) -> Row? {
        defer { reset() }
        return try withBytes(key) { key throws(StorageError) in
            try bind(Int64(position), at: 1)
            try bind(key, at: 2)
            return try step() ? try read() : nil
        }
    }

    /// The record in columns `first ..< first + 7` of the current row:
    /// (position, key, value, ts, writer, fence_name, fence_token).
    func record(at first: Int32) throws(StorageError) -> VersionedRecord {
        let position = int64(first)
        guard isInteger(first), let position = UInt32(exactly: position),
              let key = blob(first + 1), !key.isEmpty
        else {
            throw StorageError.corruptRow.with(message: "a row of \(sql) has no valid position and key")
        }
        let value = blob(first + 2)
        guard value != nil || isNull(first + 2) else {
            throw StorageError.corruptRow.with(message: "the row at position \(position) has a value that is not a blob")
        }
        return VersionedRecord(key: key, position: position, value: value, version: try version(at: first + 3),
                               fence: try fence(at: first + 5))
    }

    /// The fence in columns `first` (fence_name) and `first + 1` (fence_token): `nil` when both are NULL.
    func fence(at first: Int32) throws(StorageError) -> LockFence? {
        if isNull(first) && isNull(first + 1) { return nil }
        guard let name = text(first), isInteger(first + 1) else {
            throw StorageError.corruptRow.with(message: "a row of \(sql) has a fence that is not a name and a token")
        }
        return LockFence(name: name, token: UInt64(bitPattern: int64(first + 1)))
    }

    /// The version in columns `first` (ts) and `first + 1` (writer) of the current row.
    func version(at first: Int32) throws(StorageError) -> Version {
        guard isInteger(first), isInteger(first + 1) else {
            throw StorageError.corruptRow.with(message: "a row of \(sql) has a version that is not two integers")
        }
        return Version(timestamp: StorageSchema.unsigned(int64(first)), writer: StorageSchema.unsigned(int64(first + 1)))
    }
}

/// Calls `body` with the bytes of `array` (or `nil`), carrying typed errors through the
/// standard library's untyped `withUnsafeBytes`.
func withOptionalBytes<Result>(
    _ array: [UInt8]?,
    _ body: (UnsafeRawBufferPointer?) throws(StorageError) -> Result
) throws(StorageError) -> Result {
    guard let array else { return try body(nil) }
    let outcome: Swift.Result<Result, StorageError> = array.withUnsafeBytes { bytes in
        do throws(StorageError) {
            return .success(try body(bytes))
        } catch {
            return .failure(error)
        }
    }
    return try outcome.get()
}

/// Calls `body` with the bytes of `array`, carrying typed errors through `withUnsafeBytes`.
func withBytes<Result>(
    _ array: [UInt8],
    _ body: (UnsafeRawBufferPointer) throws(StorageError) -> Result
) throws(StorageError) -> Result {
    try withOptionalBytes(array) { bytes throws(StorageError) in try body(bytes!) }
}
