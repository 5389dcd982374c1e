import Ring

/// The Merkle leaves of one arc of the ring, what anti-entropy compares between replicas.
///
/// The arc's positions are cut into `leafHashes.count` equal stretches: leaf `i` holds
/// the offsets `floor(i * L / n) ..< floor((i + 1) * L / n)` from `arc.first`, for an arc
/// of `L` positions and `n` leaves (see ``leafArc(_:of:leaves:)``). Each row, tombstones
/// included, hashes its key and version to 64 bits (``rowHash(key:version:)``); a leaf's
/// hash is the wrapping sum of its rows' hashes, so it does not depend on the order rows
/// are read in, an empty leaf hashes to 0, and two neighbouring leaves add up to the leaf
/// of half the resolution that covers both (``folded(to:)``): the stretches of `n / 2`
/// leaves are exactly unions of pairs of the stretches of `n`.
/// The root hashes the leaf hashes in order (``root(of:)``).
public struct ArcDigest: Hashable, Sendable {
    /// The arc the digest covers.
    public let arc: RingArc
    /// One hash per leaf, clockwise from `arc.first`.
    public let leafHashes: [UInt64]
    /// Rows (live and tombstones) in the arc.
    public let rows: Int

    public init(arc: RingArc, leafHashes: [UInt64], rows: Int) {
        self.arc = arc
        self.leafHashes = leafHashes
        self.rows = rows
    }

    /// The hash of the leaf hashes: equal roots mean equal arcs (with overwhelming odds).
    public var root: UInt64 { Self.root(of: leafHashes) }

    /// The root as 8 little-endian bytes, its wire form.
    public var rootBytes: [UInt8] { Self.bytes(of: root) }

    /// The same digest at `leaves` leaves, a power of two that divides the current count:
    /// neighbouring leaves are added up. Returns `self` when `leaves` does not divide it.
    public func folded(to leaves: Int) -> ArcDigest {
        let count = leafHashes.count
        guard leaves >= 1, leaves < count, count % leaves == 0 else { return self }
        let group = count / leaves
        var folded = [UInt64](repeating: 0, count: leaves)
        for (index, hash) in leafHashes.enumerated() {
            folded[index / group] &+= hash
        }
        return ArcDigest(arc: arc, leafHashes: folded, rows: rows)
    }

    /// The indices of the leaves whose hashes differ from `other` (of the same count).
    public func differingLeaves(from other: [UInt64]) -> [Int] {
        guard other.count == leafHashes.count else { return Array(leafHashes.indices) }
        return leafHashes.indices.filter { leafHashes[$0] != other[$0] }
    }

    /// The positions of leaf `index` of `arc` cut into `leaves` stretches, or `nil` when the
    /// stretch is empty (an arc of fewer positions than leaves). It wraps when the arc does.
    public static func leafArc(_ index: Int, of arc: RingArc, leaves: Int) -> RingArc? {
        let length = arc.length
        let count = UInt64(max(1, leaves))
        let start = UInt64(index) * length / count
        let end = (UInt64(index) + 1) * length / count
        guard end > start else { return nil }
        return RingArc(first: arc.first &+ UInt32(truncatingIfNeeded: start), last: arc.first &+ UInt32(truncatingIfNeeded: end - 1))
    }

    /// The leaf of `arc` (cut into `leaves` stretches) that holds `position`, which must lie on the arc.
    public static func leafIndex(of position: UInt32, in arc: RingArc, leaves: Int) -> Int {
        let offset = UInt64(position &- arc.first)
        // The greatest i with floor(i * L / n) <= offset.
        return Int(((offset + 1) * UInt64(max(1, leaves)) - 1) / arc.length)
    }

    /// The contiguous stretches covering the given leaves (sorted indices), neighbouring leaves
    /// joined, clockwise from the arc's start.
    public static func ranges(ofLeaves indices: [Int], of arc: RingArc, leaves: Int) -> [RingArc] {
        var ranges: [RingArc] = []
        var previous: Int?
        for index in indices {
            guard let leaf = leafArc(index, of: arc, leaves: leaves) else { continue }
            if let last = ranges.last, let previous, previous + 1 == index {
                ranges[ranges.count - 1] = RingArc(first: last.first, last: leaf.last)
            } else {
                ranges.append(leaf)
            }
            previous = index
        }
        return ranges
    }

    /// A row's hash: its key (FNV-1a, 64-bit) combined with both parts of its version
    /// through a 64-bit finalizer (MurmurHash3's fmix64) after each step.
    public static func rowHash(key: [UInt8], version: Version) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        hash = mix(hash ^ (version.timestamp &* 0x9E37_79B9_7F4A_7C15))
        hash = mix(hash ^ (version.writer &* 0xC2B2_AE3D_27D4_EB4F))
        return hash
    }

    /// The root over leaf hashes, in order.
    public static func root(of leaves: [UInt64]) -> UInt64 {
        var hash = mix(UInt64(leaves.count) &* 0x9E37_79B9_7F4A_7C15)
        for leaf in leaves {
            hash = mix(hash ^ leaf) &* 0x0000_0100_0000_01B3
        }
        return mix(hash)
    }

    /// 8 little-endian bytes.
    public static func bytes(of value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }

    /// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
    static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x = x &* 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x = x &* 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }
}

/// What anti-entropy reads: digests of arcs and the rows of stretches of the ring.
extension StorageEngine {
    /// Rows at exactly position `?1`, in key order.
    static let positionRows = "SELECT \(StorageSchema.recordColumns) FROM records WHERE position = ?1 ORDER BY key"

    /// The Merkle leaves of `arc` cut into `leaves` stretches (see ``ArcDigest``), in one
    /// pass over the arc without reading values out (``ArcPass`` in a single step).
    ///
    /// Throws ``StorageError/invalidArgument`` unless `leaves` is 1...65536.
    public func digest(arc: RingArc, leaves: Int) throws(StorageError) -> ArcDigest {
        var pass = try ArcPass.digest(arc, leaves: leaves)
        try advance(&pass, rows: Int(Int64.max))
        guard let digest = pass.digest else {
            throw StorageError.sqlite.with(message: "a digest pass over \(arc) did not finish")
        }
        return digest
    }

    /// The records of `ranges`, each read clockwise from its first position, ranges in the
    /// order given (they should not overlap), tombstones included: at most `limit` rows and
    /// about `byteLimit` bytes of keys and values, always at least one row when there is one.
    ///
    /// A cut falls between positions, never inside one (all the rows of a position come
    /// together, even past the limits), so a caller continues after the last record's
    /// position. `more` says whether rows were left out.
    public func records(in ranges: [RingArc], limit: Int, byteLimit: Int = .max) throws(StorageError) -> (records: [VersionedRecord], more: Bool) {
        guard limit >= 1 else {
            throw StorageError.invalidArgument.with(message: "read limit \(limit); it must be at least 1")
        }
        return try database.access { connection throws(StorageError) in
            let select = try database.statement(StorageSchema.scanRange, connection: connection)
            var records: [VersionedRecord] = []
            var bytes = 0
            var overflow: VersionedRecord?
            scanning: for range in ranges {
                for segment in Self.segments(of: range) {
                    defer { select.reset() }
                    try select.bind(Int64(segment.lowerBound), at: 1)
                    try select.bind(Int64(segment.upperBound), at: 2)
                    try select.bind(-1, at: 3)
                    while try select.step() {
                        let record = try select.record(at: 0)
                        let size = record.byteSize
                        if !records.isEmpty && (records.count >= limit || bytes + size > byteLimit) {
                            overflow = record
                            break scanning
                        }
                        records.append(record)
                        bytes += size
                    }
                }
            }
            guard let overflow else { return (records, false) }
            // Cut before the overflowing row's position; if that is all we have, take
            // that whole position instead.
            let kept = records.prefix { $0.position != overflow.position }
            guard kept.isEmpty else { return (Array(kept), true) }
            let whole = try database.statement(Self.positionRows, connection: connection)
            defer { whole.reset() }
            try whole.bind(Int64(overflow.position), at: 1)
            var position: [VersionedRecord] = []
            while try whole.step() {
                position.append(try whole.record(at: 0))
            }
            return (position, true)
        }
    }
}
