/// What a node stores, for `ringctl status` and metrics.
public struct StorageStats: Hashable, Sendable {
    /// Keys holding a value.
    public var liveKeys: Int
    /// Keys holding a tombstone not yet purged.
    public var tombstones: Int
    /// Total bytes of the live keys' values.
    public var valueBytes: Int
    /// Total bytes of every stored key, tombstones included.
    public var keyBytes: Int
    /// Size of the database file (pages times page size), excluding the write-ahead log.
    public var fileBytes: Int

    /// Statistics with the given figures.
    public init(liveKeys: Int = 0, tombstones: Int = 0, valueBytes: Int = 0, keyBytes: Int = 0, fileBytes: Int = 0) {
        self.liveKeys = liveKeys
        self.tombstones = tombstones
        self.valueBytes = valueBytes
        self.keyBytes = keyBytes
        self.fileBytes = fileBytes
    }
}
