/// A write kept for a replica that was unreachable, to be replayed when it returns.
public struct Hint: Hashable, Sendable {
    /// The hint's id in the store; acknowledge delivery with ``HintStore/removeHints(_:)``.
    /// Ids increase in insertion order and are never reused.
    public let id: Int64
    /// The address (`host:port`) of the member the write is meant for.
    public let target: String
    /// The write to replay.
    public let record: VersionedRecord

    /// A hint `id` holding `record` for `target`.
    public init(id: Int64, target: String, record: VersionedRecord) {
        self.id = id
        self.target = target
        self.record = record
    }
}
