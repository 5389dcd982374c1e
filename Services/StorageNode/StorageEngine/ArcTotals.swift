/// How much an arc holds: what a migration of that arc will stream, for progress reports.
public struct ArcTotals: Hashable, Sendable {
    /// Rows in the arc, live keys and tombstones alike (migration streams both).
    public var records: Int
    /// Rows in the arc that are tombstones.
    public var tombstones: Int
    /// Key bytes plus value bytes of every row in the arc.
    public var bytes: Int

    /// Totals of `records` rows, `tombstones` of them deletes, holding `bytes` bytes.
    public init(records: Int = 0, tombstones: Int = 0, bytes: Int = 0) {
        self.records = records
        self.tombstones = tombstones
        self.bytes = bytes
    }
}
