import Ring
import StorageEngine
import Testing

@Suite("Arc digests (Merkle leaves) and range reads")
struct DigestTests {
    static let arcs: [RingArc] = [
        .wholeRing,
        RingArc(first: 0x4000_0000, last: 0x7FFF_FFFF),
        RingArc(first: 0xC000_0000, last: 0x3FFF_FFFF),  // wraps
    ]

    static func engine(_ records: [VersionedRecord], in directory: TemporaryDirectory, name: String = "node.db") throws -> StorageEngine {
        let engine = try StorageEngine(path: directory.path(name), sync: .normal)
        try engine.apply(records)
        return engine
    }

    @Test("equal data gives equal roots and leaves, whatever the order it was written in", arguments: arcs)
    func equalDataEqualRoots(arc: RingArc) throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 2000, seed: 11)
        let one = try Self.engine(records, in: directory, name: "one.db")
        let two = try Self.engine(records.reversed(), in: directory, name: "two.db")
        let first = try one.digest(arc: arc, leaves: 256)
        let second = try two.digest(arc: arc, leaves: 256)
        #expect(first == second)
        #expect(first.root == second.root)
        #expect(first.rows == records.filter { arc.contains($0.position) }.count)
        #expect(first.leafHashes.count == 256)
    }

    @Test("one changed version changes exactly the leaf that holds the key", arguments: arcs)
    func oneChangedVersion(arc: RingArc) throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 2000, seed: 12)
        let one = try Self.engine(records, in: directory, name: "one.db")
        let two = try Self.engine(records, in: directory, name: "two.db")
        let target = try #require(records.first { arc.contains($0.position) })
        // Same value, newer version: only the version differs.
        try two.apply([VersionedRecord(key: target.key, value: target.value,
                                       version: Version(timestamp: target.version.timestamp + 1, writer: target.version.writer))])
        for leaves in [1, 64, 4096] {
            let before = try one.digest(arc: arc, leaves: leaves)
            let after = try two.digest(arc: arc, leaves: leaves)
            #expect(before.root != after.root)
            let expectedLeaf = ArcDigest.leafIndex(of: target.position, in: arc, leaves: leaves)
            #expect(before.differingLeaves(from: after.leafHashes) == [expectedLeaf])
            let leaf = try #require(ArcDigest.leafArc(expectedLeaf, of: arc, leaves: leaves))
            #expect(leaf.contains(target.position))
        }
        // The writer alone also counts.
        try one.apply([VersionedRecord(key: target.key, value: target.value,
                                       version: Version(timestamp: target.version.timestamp + 1, writer: target.version.writer + 1))])
        #expect(try one.digest(arc: arc, leaves: 64).root != two.digest(arc: arc, leaves: 64).root)
    }

    @Test("tombstones count: a delete changes the digest, and a tombstone-only arc is not empty")
    func tombstonesCount() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        #expect(try engine.digest(arc: .wholeRing, leaves: 16).leafHashes == Array(repeating: 0, count: 16))
        try engine.apply([record("alpha", "1", ts: 10), record("beta", "2", ts: 10)])
        let live = try engine.digest(arc: .wholeRing, leaves: 16)
        try engine.apply([record("alpha", nil, ts: 11)])
        let deleted = try engine.digest(arc: .wholeRing, leaves: 16)
        #expect(deleted.rows == 2)
        #expect(live.root != deleted.root)
        try engine.apply([record("beta", nil, ts: 11)])
        let onlyTombstones = try engine.digest(arc: .wholeRing, leaves: 16)
        #expect(onlyTombstones.rows == 2)
        #expect(onlyTombstones.leafHashes.contains { $0 != 0 })
    }

    @Test("empty stretches hash to zero; leaves tile the arc; folding halves the resolution exactly", arguments: arcs)
    func leavesTileAndFold(arc: RingArc) throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 300, seed: 13)
        let engine = try Self.engine(records, in: directory)
        let fine = try engine.digest(arc: arc, leaves: 1024)
        for (index, hash) in fine.leafHashes.enumerated() {
            let leaf = try #require(ArcDigest.leafArc(index, of: arc, leaves: 1024))
            let rows = records.filter { leaf.contains($0.position) }
            #expect((hash == 0) == rows.isEmpty)
            if let row = rows.first { #expect(ArcDigest.leafIndex(of: row.position, in: arc, leaves: 1024) == index) }
        }
        // Leaves are contiguous and cover the arc.
        var total: UInt64 = 0
        var next = arc.first
        for index in 0..<1024 {
            let leaf = try #require(ArcDigest.leafArc(index, of: arc, leaves: 1024))
            #expect(leaf.first == next)
            total += leaf.length
            next = leaf.last &+ 1
        }
        #expect(total == arc.length)
        #expect(fine.folded(to: 64) == (try engine.digest(arc: arc, leaves: 64)))
        #expect(fine.folded(to: 1).root == (try engine.digest(arc: arc, leaves: 1)).root)
    }

    @Test("an arc shorter than its leaf count has empty leaves and still digests")
    func tinyArc() throws {
        let directory = try TemporaryDirectory()
        let engine = try Self.engine(try randomRecords(count: 50, seed: 14), in: directory)
        let arc = RingArc(first: 100, last: 102)
        let digest = try engine.digest(arc: arc, leaves: 8)
        #expect(digest.leafHashes.count == 8)
        #expect((0..<8).compactMap { ArcDigest.leafArc($0, of: arc, leaves: 8) }.count == 3)
        #expect(throws: StorageError.self) { try engine.digest(arc: arc, leaves: 0) }
        #expect(throws: StorageError.self) { try engine.digest(arc: arc, leaves: 65_537) }
    }

    @Test("range reads page between positions, in range order, tombstones included")
    func rangeReads() throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 1500, seed: 15)
        let engine = try Self.engine(records, in: directory)
        let ranges = [RingArc(first: 0xF000_0000, last: 0x1000_0000), RingArc(first: 0x4000_0000, last: 0x5FFF_FFFF)]
        let expected = ranges.flatMap { range in
            expectedState(records).filter { range.contains($0.position) }.sorted(by: ringOrder(from: range.first))
        }
        #expect(expected.contains { $0.isTombstone })
        let all = try engine.records(in: ranges, limit: 100_000)
        #expect(all.records == expected && !all.more)

        // Paged: continue after the last position of each page.
        var remaining = ranges
        var paged: [VersionedRecord] = []
        while !remaining.isEmpty {
            let page = try engine.records(in: remaining, limit: 37)
            #expect(page.records.count <= 37)
            paged += page.records
            guard page.more, let last = page.records.last else { break }
            let index = try #require(remaining.firstIndex { $0.contains(last.position) })
            let range = remaining[index]
            remaining = (last.position == range.last ? [] : [RingArc(first: last.position &+ 1, last: range.last)]) + remaining[(index + 1)...]
        }
        #expect(paged == expected)

        // A byte limit cuts too, but always returns at least one row.
        let small = try engine.records(in: ranges, limit: 1000, byteLimit: 1)
        #expect(small.records.count >= 1 && small.more)
    }

    @Test("a cut never splits the rows of one position")
    func cutKeepsPositionsWhole() throws {
        // Two keys at one ring position: search "k0", "k1", ... for a collision
        // (expected after about 82,000 keys; deterministic).
        var seen: [UInt32: String] = [:]
        var pair: (String, String)?
        for index in 0..<1_000_000 {
            let key = "k\(index)"
            let position = try HashRing.position(forKey: key)
            if let other = seen[position] {
                pair = (other, key)
                break
            }
            seen[position] = key
        }
        let (first, second) = try #require(pair)
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        try engine.apply([record(first, "1", ts: 1), record(second, nil, ts: 1), record("x", "2", ts: 1), record("y", "3", ts: 1)])
        let position = try HashRing.position(forKey: first)
        let from = RingArc(first: position, last: position &- 1)
        // A limit of 1 still returns both rows of the first position.
        let page = try engine.records(in: [from], limit: 1)
        #expect(Set(page.records.map { String(decoding: $0.key, as: UTF8.self) }) == [first, second])
        #expect(page.more)
        // A limit of 3 stops before the position that would overflow it, never inside.
        let three = try engine.records(in: [RingArc(first: position &+ 1, last: position)], limit: 3)
        #expect(three.records.count == 2 && three.more)
        #expect(three.records.allSatisfy { $0.position != position })
    }
}
