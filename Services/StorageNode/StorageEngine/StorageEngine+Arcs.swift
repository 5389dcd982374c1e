import Ring

/// Range operations over arcs of the ring: what migration streams, measures and drops.
extension StorageEngine {
    /// Up to `limit` records of `arc` in ring order, starting after `cursor` (from the
    /// arc's start when `nil`); tombstones included.
    ///
    /// Ring order is clockwise from the arc's first position: for a wrapping arc, first
    /// `first...UInt32.max`, then `0...last`; within a position, keys in byte order.
    /// Pass the last record's ``VersionedRecord/cursor`` to get the next batch; an empty
    /// result means the arc is exhausted. Throws ``StorageError/invalidArgument`` for a
    /// `limit` below 1 or a cursor whose position lies outside the arc.
    public func scan(arc: RingArc, after cursor: ScanCursor? = nil, limit: Int) throws(StorageError) -> [VersionedRecord] {
        guard limit >= 1 else {
            throw StorageError.invalidArgument.with(message: "scan limit \(limit); it must be at least 1")
        }
        let segments = Self.segments(of: arc)
        var start = 0
        if let cursor {
            guard let index = segments.firstIndex(where: { $0.contains(cursor.position) }) else {
                throw StorageError.invalidArgument.with(message: "cursor position \(cursor.position) is outside arc \(arc)")
            }
            start = index
        }
        return try database.access { connection throws(StorageError) in
            var records: [VersionedRecord] = []
            for (index, segment) in segments.enumerated().dropFirst(start) where records.count < limit {
                let resumeAfter = index == start ? cursor : nil
                try scan(segment, after: resumeAfter, limit: limit - records.count, into: &records, connection: connection)
            }
            return records
        }
    }

    /// Appends up to `limit` records of the non-wrapping `range`, after `cursor` if given.
    private func scan(
        _ range: ClosedRange<UInt32>,
        after cursor: ScanCursor?,
        limit: Int,
        into records: inout [VersionedRecord],
        connection: OpaquePointer
    ) throws(StorageError) {
        if let cursor {
            let select = try database.statement(StorageSchema.scanAfter, connection: connection)
            defer { select.reset() }
            try withBytes(cursor.key) { key throws(StorageError) in
                try select.bind(Int64(cursor.position), at: 1)
                try select.bind(key, at: 2)
                try select.bind(Int64(range.upperBound), at: 3)
                try select.bind(Int64(limit), at: 4)
                while try select.step() {
                    records.append(try select.record(at: 0))
                }
            }
        } else {
            let select = try database.statement(StorageSchema.scanRange, connection: connection)
            defer { select.reset() }
            try select.bind(Int64(range.lowerBound), at: 1)
            try select.bind(Int64(range.upperBound), at: 2)
            try select.bind(Int64(limit), at: 3)
            while try select.step() {
                records.append(try select.record(at: 0))
            }
        }
    }

    /// Rows, tombstones and bytes stored in `arc`: the expected totals of migrating it.
    public func count(arc: RingArc) throws(StorageError) -> ArcTotals {
        try database.access { connection throws(StorageError) in
            let select = try database.statement(StorageSchema.countRange, connection: connection)
            var totals = ArcTotals()
            for range in arc.ranges {
                defer { select.reset() }
                try select.bind(Int64(range.lowerBound), at: 1)
                try select.bind(Int64(range.upperBound), at: 2)
                guard try select.step() else { continue }
                totals.records += Int(select.int64(0))
                totals.tombstones += Int(select.int64(1))
                totals.bytes += Int(select.int64(2))
            }
            return totals
        }
    }

    /// Deletes every row of `arc` in one transaction and returns how many there were.
    ///
    /// Migration calls this only after the arc's new owners confirmed they hold it.
    @discardableResult
    public func deleteArc(_ arc: RingArc) throws(StorageError) -> Int {
        try database.transaction { connection throws(StorageError) in
            let delete = try database.statement(StorageSchema.deleteRange, connection: connection)
            var deleted = 0
            for range in arc.ranges {
                try delete.bind(Int64(range.lowerBound), at: 1)
                try delete.bind(Int64(range.upperBound), at: 2)
                try delete.run()
                deleted += delete.changes
            }
            return deleted
        }
    }

    /// Deletes every row of several arcs in one transaction; returns how many there were.
    @discardableResult
    public func deleteArcs(_ arcs: [RingArc]) throws(StorageError) -> Int {
        try database.transaction { connection throws(StorageError) in
            let delete = try database.statement(StorageSchema.deleteRange, connection: connection)
            var deleted = 0
            for range in arcs.flatMap(\.ranges) {
                try delete.bind(Int64(range.lowerBound), at: 1)
                try delete.bind(Int64(range.upperBound), at: 2)
                try delete.run()
                deleted += delete.changes
            }
            return deleted
        }
    }

    /// The arc's non-wrapping ranges in ring (clockwise) order from its first position.
    static func segments(of arc: RingArc) -> [ClosedRange<UInt32>] {
        arc.wraps ? [arc.first...UInt32.max, 0...arc.last] : [arc.first...arc.last]
    }
}
