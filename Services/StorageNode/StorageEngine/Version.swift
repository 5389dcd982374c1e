/// The version of one write: the hybrid-logical-clock timestamp it was made at and the id
/// of the node (writer) that made it.
///
/// Versions are totally ordered: the higher timestamp wins, and equal timestamps
/// are ordered by writer id, so replicas that see the same versions in any order
/// agree on the newest. A writer never reuses a version for different contents.
public struct Version: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The timestamp from the writer's ``HybridLogicalClock``.
    public let timestamp: UInt64
    /// The id of the node that made the write; it breaks ties between equal timestamps.
    public let writer: UInt64

    /// The version made by `writer` at `timestamp`.
    public init(timestamp: UInt64, writer: UInt64) {
        self.timestamp = timestamp
        self.writer = writer
    }

    /// Whether `lhs` is older than `rhs`: a lower timestamp, or the same timestamp and a lower writer id.
    public static func < (lhs: Version, rhs: Version) -> Bool {
        (lhs.timestamp, lhs.writer) < (rhs.timestamp, rhs.writer)
    }

    /// `timestamp@writer`, e.g. `112233445566@7`.
    public var description: String {
        "\(timestamp)@\(writer)"
    }
}
