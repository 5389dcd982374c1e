/// One key's state on a replica: its bytes, ring position, value (or a tombstone for a
/// delete) and the version of the write that produced it.
///
/// Replicas converge by merging: the record with the greater version wins (see
/// ``merged(with:)``), which is idempotent, commutative and associative, so
/// migration, hinted handoff and read repair can all just apply records.
///
/// A fenced write's record carries its ``fence`` (the lock and fencing token it was
/// written under) wherever it travels. Two records fenced by the same lock are ordered
/// by token first, so a stale holder's write never beats its successor's, whatever
/// their clocks said; and every replica refuses a record whose token is below the
/// highest it has seen for that lock on that key (``StorageEngine/apply(_:)``), so
/// once the highest token is known everywhere the order among survivors is the
/// version order again.
public struct VersionedRecord: Hashable, Sendable {
    /// The key, arbitrary non-empty bytes.
    public let key: [UInt8]
    /// The key's position on the ring, `HashRing.position(forKey: key)`.
    public let position: UInt32
    /// The value, arbitrary bytes (possibly none), or `nil` for a tombstone.
    public let value: [UInt8]?
    /// The version of the write this record holds.
    public let version: Version
    /// The lock and fencing token the write was made under; `nil` for an unfenced write.
    public let fence: LockFence?

    /// A record for `key` holding `value` (`nil` for a delete) at `version`; the ring
    /// position is computed from the key. Throws ``StorageError/emptyKey`` for an empty key.
    public init(key: [UInt8], value: [UInt8]?, version: Version, fence: LockFence? = nil) throws(StorageError) {
        self.init(key: key, position: try StorageEngine.position(of: key), value: value, version: version, fence: fence)
    }

    /// A tombstone for `key`: the record of a delete made at `version`.
    public static func tombstone(key: [UInt8], version: Version) throws(StorageError) -> VersionedRecord {
        try VersionedRecord(key: key, value: nil, version: version)
    }

    /// A record whose position the caller vouches for: rows read back from the database.
    init(key: [UInt8], position: UInt32, value: [UInt8]?, version: Version, fence: LockFence? = nil) {
        self.key = key
        self.position = position
        self.value = value
        self.version = version
        self.fence = fence
    }

    /// Whether this record is the tombstone of a deleted key.
    public var isTombstone: Bool { value == nil }

    /// The cursor just past this record, to resume a ``StorageEngine/scan(arc:after:limit:)``.
    public var cursor: ScanCursor { ScanCursor(position: position, key: key) }

    /// The newer of two records of the same key: the greater version wins, except that
    /// of two records fenced by the same lock with different tokens the higher token wins.
    ///
    /// Two records never share a version with different contents when writers follow
    /// the rules; if they do anyway, the greater content wins (a value beats a tombstone,
    /// then bytes compare lexicographically), so the merge stays commutative.
    public func merged(with other: VersionedRecord) -> VersionedRecord {
        Self.supersedes(other, self) ? other : self
    }

    /// Whether merging `other` into this record would replace it (`other` is newer by the merge rule).
    public func isSuperseded(by other: VersionedRecord) -> Bool {
        Self.supersedes(other, self)
    }

    /// Whether `candidate` replaces `stored` in a merge; the engine's upsert applies the same rule.
    static func supersedes(_ candidate: VersionedRecord, _ stored: VersionedRecord) -> Bool {
        if let candidateFence = candidate.fence, let storedFence = stored.fence,
           candidateFence.name == storedFence.name, candidateFence.token != storedFence.token {
            return candidateFence.token > storedFence.token
        }
        if candidate.version != stored.version { return candidate.version > stored.version }
        switch (candidate.value, stored.value) {
        case let (candidateValue?, storedValue?):
            return storedValue.lexicographicallyPrecedes(candidateValue)
        case (.some, nil):
            return true
        case (nil, _):
            return false
        }
    }
}

/// The lock a fenced write was made under and the fencing token the lock service granted.
public struct LockFence: Hashable, Sendable, CustomStringConvertible {
    /// The lock's name, 1...256 bytes.
    public let name: String
    /// The fencing token, above 0.
    public let token: UInt64

    public init(name: String, token: UInt64) {
        self.name = name
        self.token = token
    }

    /// `name:token`, as `ringctl put --fence` takes it.
    public var description: String { "\(name):\(token)" }
}

extension VersionedRecord {
    /// The bytes of a record's data: its key and its value (none for a tombstone).
    /// What migration batches and anti-entropy windows are cut by, what rate limits
    /// charge and what the engine's arc totals count.
    public var byteSize: Int { Self.byteSize(keyBytes: key.count, valueBytes: value?.count) }

    /// The bytes of a record with a key of `keyBytes` and a value of `valueBytes` (`nil`: a tombstone).
    public static func byteSize(keyBytes: Int, valueBytes: Int?) -> Int { keyBytes + (valueBytes ?? 0) }
}

extension Sequence<VersionedRecord> {
    /// The bytes of the records' data, each counted by ``VersionedRecord/byteSize``.
    public var byteSize: Int { reduce(0) { $0 + $1.byteSize } }
}
