import GRDBSQLite

/// Reads a sealed node snapshot (``SnapshotFile/seal(path:)``), opened read-only:
/// its records in ring order, a batch at a time, tombstones included.
///
/// One reader per file and thread; closed by ``close()`` or when released.
public final class SnapshotReader {
    public let path: String
    private var connection: OpaquePointer?
    private var scan: SQLiteStatement?
    /// The last record returned, where the next batch starts after.
    private var after: (position: Int64, key: [UInt8]) = (-1, [])
    private var exhausted = false

    /// Opens `path` read-only; throws when it is missing or not an engine database.
    public init(path: String) throws(StorageError) {
        self.path = path
        let connection = try SnapshotFile.open(path, flags: SQLITE_OPEN_READONLY)
        self.connection = connection
        do {
            scan = try SQLiteStatement(sql: """
                SELECT \(StorageSchema.recordColumns) FROM records WHERE (position, key) > (?1, ?2)
                ORDER BY position, key LIMIT ?3
                """, connection: connection)
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    public func close() {
        scan?.finalize()
        scan = nil
        if let connection { sqlite3_close_v2(connection) }
        connection = nil
    }

    /// Rows holding a value and rows holding a tombstone, counted from the rows.
    public func counts() throws(StorageError) -> (liveKeys: Int, tombstones: Int) {
        guard let connection else { throw StorageError.closed.with(message: "\(path) is closed") }
        let (live, tombstones) = try SnapshotFile.counts(connection, path: path)
        return (live, tombstones)
    }

    /// The next records in ring order (position, then key bytes), up to `limit`;
    /// empty once every record was returned.
    public func next(limit: Int) throws(StorageError) -> [VersionedRecord] {
        guard !exhausted else { return [] }
        guard let scan else { throw StorageError.closed.with(message: "\(path) is closed") }
        guard limit > 0 else { throw StorageError.invalidArgument.with(message: "a batch needs a limit above 0, not \(limit)") }
        var records: [VersionedRecord] = []
        try withBytes(after.key) { key throws(StorageError) in
            defer { scan.reset() }
            try scan.bind(after.position, at: 1)
            try scan.bind(key, at: 2)
            try scan.bind(Int64(limit), at: 3)
            while try scan.step() {
                records.append(try scan.record(at: 0))
            }
        }
        if let last = records.last {
            after = (Int64(last.position), last.key)
        }
        if records.count < limit { exhausted = true }
        return records
    }
}

/// Merges several snapshots' records by key, as replicas merge: each key once,
/// in ring order, as the newest of its copies (``VersionedRecord/merged(with:)``,
/// so of two copies fenced by one lock the higher token wins). Tombstones come
/// out too: a key whose newest copy is a tombstone was deleted. Reads each file
/// a batch at a time, so memory stays a few batches per file whatever their size.
public final class SnapshotMerger {
    /// What the merge met so far.
    public struct Counts: Hashable, Sendable {
        /// Rows read from every file.
        public var rows = 0
        /// Distinct keys (each returned once).
        public var keys = 0
        /// Keys whose newest copy is a tombstone.
        public var tombstones = 0
        /// Rows that were another copy of a key already counted: `rows - keys`.
        public var duplicates: Int { rows - keys }
    }

    private let readers: [SnapshotReader]
    private let batchRows: Int
    private var buffers: [[VersionedRecord]]
    private var offsets: [Int]
    private var drained: [Bool]
    public private(set) var counts = Counts()

    /// Merges `readers`' records, reading `batchRows` rows of a file at a time.
    public init(readers: [SnapshotReader], batchRows: Int = 1024) {
        self.readers = readers
        self.batchRows = max(1, batchRows)
        buffers = Array(repeating: [], count: readers.count)
        offsets = Array(repeating: 0, count: readers.count)
        drained = Array(repeating: false, count: readers.count)
    }

    /// The next up to `limit` keys in ring order, each the newest of its copies;
    /// empty once every file is read.
    public func next(limit: Int) throws(StorageError) -> [VersionedRecord] {
        var merged: [VersionedRecord] = []
        while merged.count < limit {
            var newest: VersionedRecord?
            var holders: [Int] = []
            for index in readers.indices {
                guard let head = try head(of: index) else { continue }
                if let current = newest, !Self.sameKey(head, current) {
                    guard Self.precedes(head, current) else { continue }
                    holders.removeAll()
                    newest = head
                } else {
                    newest = newest.map { $0.merged(with: head) } ?? head
                }
                holders.append(index)
            }
            guard let record = newest else { break }
            for index in holders { offsets[index] += 1 }
            counts.rows += holders.count
            counts.keys += 1
            if record.isTombstone { counts.tombstones += 1 }
            merged.append(record)
        }
        return merged
    }

    /// The next unmerged record of file `index`, reading its next batch when needed.
    private func head(of index: Int) throws(StorageError) -> VersionedRecord? {
        if offsets[index] >= buffers[index].count {
            guard !drained[index] else { return nil }
            buffers[index] = try readers[index].next(limit: batchRows)
            offsets[index] = 0
            if buffers[index].isEmpty {
                drained[index] = true
                return nil
            }
        }
        return buffers[index][offsets[index]]
    }

    private static func sameKey(_ lhs: VersionedRecord, _ rhs: VersionedRecord) -> Bool {
        lhs.position == rhs.position && lhs.key == rhs.key
    }

    /// Ring order, as the files are sorted: position, then key bytes (SQLite's blob order).
    private static func precedes(_ lhs: VersionedRecord, _ rhs: VersionedRecord) -> Bool {
        lhs.position != rhs.position ? lhs.position < rhs.position : lhs.key.lexicographicallyPrecedes(rhs.key)
    }
}
