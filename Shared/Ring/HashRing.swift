/// A Ketama-compatible consistent-hash ring: which members hold a key.
///
/// Each member with weight `w` gets `density * w` MD5 digests of the string
/// `"<host:port>-<i>"`, and each digest gives four points (the little-endian
/// `UInt32`s at byte offsets 0, 4, 8 and 12). A key's position is the
/// little-endian `UInt32` of the first four bytes of MD5(key); its preference
/// list is the first N distinct members met walking clockwise from the first
/// point at or after that position, wrapping past `UInt32.max` to the first
/// point. Points with equal values are ordered by member address.
///
/// At the default density of 40 with every weight 1, the owner of a key is
/// the server that libketama and libmemcached's weighted Ketama mode pick for
/// the same `host:port` list. The ring is an immutable value: build a new one
/// for a new membership and ``diff(to:replicas:)`` the two.
public struct HashRing: Sendable {
    /// Ketama's density: 40 digests, so 160 points, per unit of weight.
    public static let ketamaDensity = 40

    /// The most points a ring may have (16 Mi, about 200 MiB of tables).
    public static let maximumPointCount = 1 << 24

    /// The members, sorted by address; member indices used by the ring refer to this array.
    public let members: [RingMember]

    /// Digests per unit of weight; each digest gives four points.
    public let density: Int

    /// The points in ring order, each `position << 32 | member index`: sorting these
    /// integers orders points by position and ties by member index, which is address
    /// order, and a lookup finds a point's position and member in one cache line.
    let points: [UInt64]

    /// Positions are split into `2^(32 - bucketShift)` equal buckets; `bucketStarts[b]` is the
    /// index of the first point at or after bucket `b`'s first position (with one extra entry,
    /// the point count). With about one bucket per four points, a lookup is one read of a
    /// small table and a search among a few neighbouring points, not a binary search over
    /// the whole ring.
    let bucketStarts: [UInt32]
    let bucketShift: UInt32

    /// Builds the ring of `members` at `density` digests per unit of weight.
    ///
    /// Throws ``RingError/emptyMembership`` for no members,
    /// ``RingError/duplicateMember`` when two members share an address,
    /// ``RingError/invalidDensity`` when `density < 1` and
    /// ``RingError/ringTooLarge`` beyond ``maximumPointCount`` points.
    public init(members: [RingMember], density: Int = HashRing.ketamaDensity) throws(RingError) {
        guard !members.isEmpty else { throw RingError.emptyMembership }
        guard density >= 1 else {
            throw RingError.invalidDensity.with(detail: "density \(density); it must be at least 1")
        }
        let sorted = members.sorted { $0.address.utf8.lexicographicallyPrecedes($1.address.utf8) }
        for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.address == next.address {
            throw RingError.duplicateMember.with(detail: "\(next.address) appears more than once")
        }
        var pointCount = 0
        for member in sorted {
            let (digests, overflowA) = density.multipliedReportingOverflow(by: member.weight)
            let (total, overflowB) = pointCount.addingReportingOverflow(digests)
            guard !overflowA, !overflowB, total <= Self.maximumPointCount / 4 else {
                throw RingError.ringTooLarge.with(
                    detail: "weights times density \(density) exceed \(Self.maximumPointCount) points"
                )
            }
            pointCount = total
        }
        pointCount *= 4

        var tagged: [UInt64] = []
        tagged.reserveCapacity(pointCount)
        for (index, member) in sorted.enumerated() {
            KetamaHash.appendPoints(
                address: member.address,
                digests: density * member.weight,
                memberIndex: UInt32(index),
                to: &tagged
            )
        }
        tagged.sort()

        self.members = sorted
        self.density = density
        self.points = tagged
        (self.bucketStarts, self.bucketShift) = Self.bucketIndex(of: tagged)
    }

    /// The bucket table over sorted points: 2^8 to 2^22 buckets, about one per four points.
    private static func bucketIndex(of points: [UInt64]) -> (starts: [UInt32], shift: UInt32) {
        var bucketBits = 8
        while bucketBits < 22 && (4 << bucketBits) < points.count { bucketBits += 1 }
        let shift = UInt32(32 - bucketBits)
        var starts = [UInt32](repeating: UInt32(points.count), count: (1 << bucketBits) + 1)
        var point = 0
        for bucket in 0..<(1 << bucketBits) {
            let bucketFirst = UInt64(bucket) << (shift + 32)
            while point < points.count && points[point] < bucketFirst { point += 1 }
            starts[bucket] = UInt32(point)
        }
        return (starts, shift)
    }

    /// The number of points on the ring: four per digest.
    public var pointCount: Int { points.count }

    /// The index in ``members`` of the member with this address, if any.
    public func memberIndex(ofAddress address: String) -> Int? {
        var low = 0
        var high = members.count
        let target = address.utf8
        while low < high {
            let middle = (low + high) / 2
            if members[middle].address.utf8.lexicographicallyPrecedes(target) {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low < members.count && members[low].address == address ? low : nil
    }

    // MARK: Key positions

    /// The ring position of a key given as bytes: the little-endian `UInt32` of MD5(key)[0..<4].
    public static func position(forKey key: UnsafeRawBufferPointer) throws(RingError) -> UInt32 {
        try KetamaHash.position(key)
    }

    /// The ring position of a key given as any collection of bytes (`[UInt8]`, `Data`, a slice).
    ///
    /// Inlinable, so that it is specialised for the caller's collection type.
    @inlinable
    public static func position(forKey key: some Collection<UInt8>) throws(RingError) -> UInt32 {
        guard !key.isEmpty else { throw RingError.emptyKey }
        if let position = key.withContiguousStorageIfAvailable({ KetamaHash.digestWords(UnsafeRawBufferPointer($0)).0 }) {
            return position
        }
        return Array(key).withUnsafeBytes { KetamaHash.digestWords($0).0 }
    }

    /// The ring position of a text key: the hash of its UTF-8 bytes.
    public static func position(forKey key: String) throws(RingError) -> UInt32 {
        guard !key.isEmpty else { throw RingError.emptyKey }
        var key = key
        return key.withUTF8 { KetamaHash.digestWords(UnsafeRawBufferPointer($0)).0 }
    }

    // MARK: Lookups

    /// Calls `body` with unsafe views of the lookup tables, so that loops over many keys
    /// touch the arrays without retaining them for every key.
    func withTables<Result>(_ body: (RingTables) throws -> Result) rethrows -> Result {
        try points.withUnsafeBufferPointer { points in
            try bucketStarts.withUnsafeBufferPointer { bucketStarts in
                try body(
                    RingTables(
                        points: points,
                        bucketStarts: bucketStarts,
                        bucketShift: bucketShift,
                        memberCount: members.count
                    )
                )
            }
        }
    }

    /// The index of the first point at or after `position`, wrapping to 0 past the last point.
    func firstPoint(atOrAfter position: UInt32) -> Int {
        withTables { $0.firstPoint(atOrAfter: position) }
    }

    /// Calls `body` with the member indices of the preference list that starts at point `start`.
    func forEachPreferredMember(fromPoint start: Int, wanted: Int, _ body: (Int) -> Void) {
        withTables { $0.forEachPreferredMember(fromPoint: start, wanted: wanted, body) }
    }

    /// Replaces the contents of `indices` with the preference list of `position` as indices
    /// into ``members``, reusing its storage: the allocation-free lookup for hot loops.
    ///
    /// Asking for more replicas than there are members yields every member.
    public func preferenceIndices(
        forPosition position: UInt32,
        replicas: Int,
        into indices: inout [Int]
    ) throws(RingError) {
        guard replicas >= 1 else {
            throw RingError.invalidReplicas.with(detail: "\(replicas) replicas; at least 1 is needed")
        }
        indices.removeAll(keepingCapacity: true)
        let wanted = min(replicas, members.count)
        withTables { tables in
            tables.forEachPreferredMember(fromPoint: tables.firstPoint(atOrAfter: position), wanted: wanted) {
                indices.append($0)
            }
        }
    }

    /// The first `replicas` distinct members clockwise from `position`, primary first.
    ///
    /// Asking for more replicas than there are members yields every member.
    public func preferenceList(forPosition position: UInt32, replicas: Int) throws(RingError) -> [RingMember] {
        guard replicas >= 1 else {
            throw RingError.invalidReplicas.with(detail: "\(replicas) replicas; at least 1 is needed")
        }
        let wanted = min(replicas, members.count)
        var list: [RingMember] = []
        list.reserveCapacity(wanted)
        withTables { tables in
            tables.forEachPreferredMember(fromPoint: tables.firstPoint(atOrAfter: position), wanted: wanted) {
                list.append(members[$0])
            }
        }
        return list
    }

    /// The first `replicas` distinct members clockwise from the key's position, primary first.
    @inlinable
    public func preferenceList(forKey key: some Collection<UInt8>, replicas: Int) throws(RingError) -> [RingMember] {
        try preferenceList(forPosition: Self.position(forKey: key), replicas: replicas)
    }

    /// The first `replicas` distinct members clockwise from the position of a text key's UTF-8 bytes.
    public func preferenceList(forKey key: String, replicas: Int) throws(RingError) -> [RingMember] {
        try preferenceList(forPosition: Self.position(forKey: key), replicas: replicas)
    }

    /// The member owning `position`: the member of the first point at or after it.
    public func owner(forPosition position: UInt32) -> RingMember {
        withTables { members[$0.member(ofPoint: $0.firstPoint(atOrAfter: position))] }
    }

    /// The member owning a key (its primary replica).
    @inlinable
    public func owner(forKey key: some Collection<UInt8>) throws(RingError) -> RingMember {
        owner(forPosition: try Self.position(forKey: key))
    }

    /// The member owning a text key, hashed as UTF-8.
    public func owner(forKey key: String) throws(RingError) -> RingMember {
        owner(forPosition: try Self.position(forKey: key))
    }
}

extension HashRing: Equatable {
    /// Rings are equal when they have the same members (addresses and weights) and density,
    /// which fixes every point; the order members were given in does not matter.
    public static func == (lhs: HashRing, rhs: HashRing) -> Bool {
        lhs.density == rhs.density && lhs.members == rhs.members
    }
}
