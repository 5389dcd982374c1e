/// How a ``StorageEngine`` opens its database: durability, memory and checkpointing.
public struct StorageOptions: Hashable, Sendable {
    /// Durability of each commit; `.full` (fsync per commit) by default. See ``SyncMode``.
    public var sync: SyncMode
    /// The SQLite page cache, in KiB (at least 1 MiB); 32 MiB by default.
    public var cacheKibibytes: Int
    /// Pages (4 KiB each) the write-ahead log may grow to before SQLite copies it back into
    /// the database file (a checkpoint, with its fsyncs); 16,384 (64 MiB) by default.
    ///
    /// Writes land at random ring positions, so a batch of n rows dirties about n
    /// pages and every checkpoint rewrites most of the file; a larger log checkpoints
    /// less often and roughly doubles write throughput over SQLite's default of 1,000,
    /// at the cost of disk space and a longer log replay when reopening after a crash.
    /// The node can also call ``StorageEngine/checkpoint()`` when idle.
    public var checkpointPages: Int

    /// Options with the given settings; the defaults suit a storage node.
    public init(sync: SyncMode = .full, cacheKibibytes: Int = 32 * 1024, checkpointPages: Int = 16_384) {
        self.sync = sync
        self.cacheKibibytes = cacheKibibytes
        self.checkpointPages = checkpointPages
    }
}
