import RingProtocol

/// How many replicas hold a key (N) and how many must acknowledge a write
/// (W) or answer a read (R). `nil` means the cluster's default.
public struct Quorum: Sendable, Equatable {
    public var n: Int?
    public var w: Int?
    public var r: Int?

    public init(n: Int? = nil, w: Int? = nil, r: Int? = nil) {
        self.n = n
        self.w = w
        self.r = r
    }

    var wire: WireQuorum {
        WireQuorum.with {
            $0.n = UInt32(clamping: n ?? 0)
            $0.w = UInt32(clamping: w ?? 0)
            $0.r = UInt32(clamping: r ?? 0)
        }
    }
}

/// A value's version: the coordinator's hybrid timestamp and its writer id.
/// Versions order writes; `TIMESTAMP@WRITER` is how they are printed and parsed.
public struct Version: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var timestamp: UInt64
    public var writer: UInt64

    public init(timestamp: UInt64, writer: UInt64) {
        self.timestamp = timestamp
        self.writer = writer
    }

    /// `TIMESTAMP@WRITER`, as `description` prints it; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let timestamp = UInt64(parts[0]), let writer = UInt64(parts[1]) else { return nil }
        self.init(timestamp: timestamp, writer: writer)
    }

    public var description: String { "\(timestamp)@\(writer)" }

    public static func < (a: Version, b: Version) -> Bool { (a.timestamp, a.writer) < (b.timestamp, b.writer) }

    init(_ wire: WireVersion) {
        self.init(timestamp: wire.timestamp, writer: wire.writer)
    }

    var wire: WireVersion { WireVersion.with { $0.timestamp = timestamp; $0.writer = writer } }
}

/// A write's outcome: the version it was stored under and how many replicas acknowledged it.
public struct WriteResult: Sendable, Equatable {
    public let version: Version
    public let acks: Int

    public init(version: Version, acks: Int) {
        self.version = version
        self.acks = acks
    }
}

/// A read's outcome: the newest version among the replicas that answered,
/// or `found == false` for a key that is absent or deleted.
public struct ReadResult: Sendable, Equatable {
    public let found: Bool
    public let value: [UInt8]
    /// The newest version (of the tombstone for a deleted key); zero when never written.
    public let version: Version
    /// How many replicas answered.
    public let replies: Int

    public init(found: Bool, value: [UInt8], version: Version, replies: Int) {
        self.found = found
        self.value = value
        self.version = version
        self.replies = replies
    }
}
