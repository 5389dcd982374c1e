import Ring

/// A pass over the rows of an arc done in bounded steps: what a node runs one
/// step per reactor turn, so that no turn does work proportional to the data
/// (``StorageEngine/advance(_:rows:)``). Rows written between steps behind the
/// cursor are not seen, rows ahead of it are: the result describes the arc as
/// it was when each stretch was read.
public struct ArcPass<Result> {
    /// The arc walked, clockwise from its first position.
    public let arc: RingArc
    /// The last row visited; `nil` before the first step.
    var cursor: ScanCursor?
    /// Whether every row of the arc was visited.
    public internal(set) var isFinished = false
    /// What the rows visited so far add up to.
    public internal(set) var result: Result

    init(arc: RingArc, result: Result) {
        self.arc = arc
        self.result = result
    }
}

/// The Merkle leaves of an arc being computed (see ``ArcDigest``).
public struct DigestSoFar {
    let leaves: Int
    var hashes: [UInt64]
    var rows = 0
}

extension ArcPass where Result == ArcTotals {
    /// Counting the rows, tombstones and bytes of `arc`: the expected totals of migrating it.
    public static func count(_ arc: RingArc) -> ArcPass<ArcTotals> {
        ArcPass(arc: arc, result: ArcTotals())
    }
}

extension ArcPass where Result == DigestSoFar {
    /// Computing the digest of `arc` at `leaves` leaves, a number in 1...65536.
    public static func digest(_ arc: RingArc, leaves: Int) throws(StorageError) -> ArcPass<DigestSoFar> {
        guard (1...65_536).contains(leaves) else {
            throw StorageError.invalidArgument.with(message: "\(leaves) leaves; a digest has 1...65536")
        }
        return ArcPass(arc: arc, result: DigestSoFar(leaves: leaves, hashes: [UInt64](repeating: 0, count: leaves)))
    }

    /// The digest, once the pass is finished.
    public var digest: ArcDigest? {
        isFinished ? ArcDigest(arc: arc, leafHashes: result.hashes, rows: result.rows) : nil
    }
}

extension StorageEngine {
    /// Rows of `?1...?2` in ring order without their values, at most `?3`.
    static let walkRange = """
        SELECT position, key, ts, writer, length(value) FROM records WHERE position >= ?1 AND position <= ?2
        ORDER BY position, key LIMIT ?3
        """
    /// Rows after `(?1, ?2)` up to position `?3` in ring order without their values, at most `?4`.
    static let walkAfter = """
        SELECT position, key, ts, writer, length(value) FROM records WHERE (position, key) > (?1, ?2) AND position <= ?3
        ORDER BY position, key LIMIT ?4
        """

    /// Counts up to `rows` more rows of the pass's arc.
    public func advance(_ pass: inout ArcPass<ArcTotals>, rows: Int) throws(StorageError) {
        var totals = pass.result
        try advance(&pass, rows: rows) { _, key, _, valueBytes in
            totals.records += 1
            if valueBytes == nil { totals.tombstones += 1 }
            totals.bytes += VersionedRecord.byteSize(keyBytes: key.count, valueBytes: valueBytes)
        }
        pass.result = totals
    }

    /// Hashes up to `rows` more rows of the pass's arc into its leaves.
    public func advance(_ pass: inout ArcPass<DigestSoFar>, rows: Int) throws(StorageError) {
        var soFar = pass.result
        let arc = pass.arc
        let length = arc.length
        let count = UInt64(soFar.leaves)
        try advance(&pass, rows: rows) { position, key, version, _ in
            let offset = UInt64(position &- arc.first)
            soFar.hashes[Int(((offset + 1) * count - 1) / length)] &+= ArcDigest.rowHash(key: key, version: version)
            soFar.rows += 1
        }
        pass.result = soFar
    }

    /// Visits up to `limit` rows after the pass's cursor, clockwise, and moves the cursor;
    /// marks the pass finished when the arc has no rows left.
    private func advance<Result>(
        _ pass: inout ArcPass<Result>,
        rows limit: Int,
        visit: (_ position: UInt32, _ key: [UInt8], _ version: Version, _ valueBytes: Int?) -> Void
    ) throws(StorageError) {
        guard !pass.isFinished else { return }
        guard limit >= 1 else {
            throw StorageError.invalidArgument.with(message: "step of \(limit) rows; it must be at least 1")
        }
        let segments = Self.segments(of: pass.arc)
        var start = 0
        if let cursor = pass.cursor {
            guard let index = segments.firstIndex(where: { $0.contains(cursor.position) }) else {
                throw StorageError.invalidArgument.with(message: "cursor position \(cursor.position) is outside arc \(pass.arc)")
            }
            start = index
        }
        let resume = pass.cursor
        let (visited, last) = try database.access { connection throws(StorageError) -> (Int, ScanCursor?) in
            var visited = 0
            var last: ScanCursor?
            for (index, segment) in segments.enumerated().dropFirst(start) where visited < limit {
                let after = index == start ? resume : nil
                let select = try database.statement(after == nil ? Self.walkRange : Self.walkAfter, connection: connection)
                defer { select.reset() }
                try withOptionalBytes(after?.key) { key throws(StorageError) in
                    var parameter: Int32 = 1
                    if let after, let key {
                        try select.bind(Int64(after.position), at: 1)
                        try select.bind(key, at: 2)
                        parameter = 3
                    } else {
                        try select.bind(Int64(segment.lowerBound), at: 1)
                        parameter = 2
                    }
                    try select.bind(Int64(segment.upperBound), at: parameter)
                    try select.bind(Int64(limit - visited), at: parameter + 1)
                    while try select.step() {
                        guard select.isInteger(0), let position = UInt32(exactly: select.int64(0)), let key = select.blob(1) else {
                            throw StorageError.corruptRow.with(message: "a row of \(select.sql) has no valid position and key")
                        }
                        visit(position, key, try select.version(at: 2), select.isNull(4) ? nil : Int(select.int64(4)))
                        visited += 1
                        last = ScanCursor(position: position, key: key)
                    }
                }
            }
            return (visited, last)
        }
        if let last { pass.cursor = last }
        // Fewer rows than asked for: the arc is exhausted.
        if visited < limit { pass.isFinished = true }
    }

    // MARK: Deleting in steps

    /// Deletes up to `?3` rows with positions in `?1...?2`.
    static let deleteRangeLimited = """
        DELETE FROM records WHERE (position, key) IN
            (SELECT position, key FROM records WHERE position >= ?1 AND position <= ?2 ORDER BY position, key LIMIT ?3)
        """

    /// Deletes up to `?2` tombstones whose timestamp is below `?1`.
    static let purgeTombstonesLimited = """
        DELETE FROM records WHERE (position, key) IN
            (SELECT position, key FROM records WHERE value IS NULL AND ts < ?1 LIMIT ?2)
        """

    /// Deletes up to `limit` rows of `arcs` in one transaction; `more` says whether rows may remain.
    public func deleteArcs(_ arcs: [RingArc], limit: Int) throws(StorageError) -> (deleted: Int, more: Bool) {
        guard limit >= 1 else {
            throw StorageError.invalidArgument.with(message: "delete limit \(limit); it must be at least 1")
        }
        return try database.transaction { connection throws(StorageError) in
            let delete = try database.statement(Self.deleteRangeLimited, connection: connection)
            var deleted = 0
            for range in arcs.flatMap(\.ranges) where deleted < limit {
                try delete.bind(Int64(range.lowerBound), at: 1)
                try delete.bind(Int64(range.upperBound), at: 2)
                try delete.bind(Int64(limit - deleted), at: 3)
                try delete.run()
                deleted += delete.changes
            }
            return (deleted, deleted >= limit)
        }
    }

    /// Deletes up to `limit` tombstones older than `timestamp` (see ``purgeTombstones(olderThan:)``);
    /// `more` says whether some may remain.
    public func purgeTombstones(olderThan timestamp: UInt64, limit: Int) throws(StorageError) -> (purged: Int, more: Bool) {
        guard limit >= 1 else {
            throw StorageError.invalidArgument.with(message: "purge limit \(limit); it must be at least 1")
        }
        return try database.transaction { connection throws(StorageError) in
            let purge = try database.statement(Self.purgeTombstonesLimited, connection: connection)
            try purge.bind(StorageSchema.stored(timestamp), at: 1)
            try purge.bind(Int64(limit), at: 2)
            try purge.run()
            return (purge.changes, purge.changes >= limit)
        }
    }
}
