/// How hard a commit pushes data to disk before ``StorageEngine/apply(_:)`` returns.
///
/// Both modes use SQLite's write-ahead log; they differ in when it is fsynced.
public enum SyncMode: String, Hashable, Sendable, CaseIterable {
    /// `PRAGMA synchronous = FULL`: the log is fsynced on every commit, so an
    /// acknowledged batch survives a power loss or kernel crash. One fsync per
    /// batch, which group commit amortises over every write of a reactor turn.
    case full
    /// `PRAGMA synchronous = NORMAL`: a commit is written to the log (the OS page
    /// cache) but fsynced only at checkpoints, so an acknowledged batch survives a
    /// process crash or `kill -9`, while a power loss may lose the latest commits
    /// (never corrupting the file). Replication on N nodes covers that window.
    case normal
}
