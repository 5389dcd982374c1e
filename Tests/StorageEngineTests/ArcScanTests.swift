import Ring
import StorageEngine
import Testing

@Suite("Arc scans, counts and deletes")
struct ArcScanTests {
    static let arcs: [RingArc] = [
        .wholeRing,
        RingArc(first: 0x4000_0000, last: 0x7FFF_FFFF),
        RingArc(first: 0xC000_0000, last: 0x3FFF_FFFF),  // wraps
        RingArc(first: .max, last: 0),  // wraps, two positions
        RingArc(first: 0x8000_0000, last: 0x8000_0000),  // one position, almost surely empty
        RingArc(first: 0x0000_0001, last: 0x0000_0000),  // wraps through everything but nothing missing
    ]

    /// An engine holding `records`, in a directory the caller keeps alive.
    static func loadedEngine(_ records: [VersionedRecord], in directory: TemporaryDirectory) throws -> StorageEngine {
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        try engine.apply(records)
        return engine
    }

    /// What scanning `arc` must return: its records clockwise from `arc.first`.
    static func expected(_ records: [VersionedRecord], in arc: RingArc) -> [VersionedRecord] {
        expectedState(records).filter { arc.contains($0.position) }.sorted(by: ringOrder(from: arc.first))
    }

    @Test("paged scans with a cursor return the arc in ring order", arguments: arcs)
    func pagedScan(arc: RingArc) throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 1500, seed: 5)
        let engine = try Self.loadedEngine(records, in: directory)
        var scanned: [VersionedRecord] = []
        var cursor: ScanCursor?
        while true {
            let page = try engine.scan(arc: arc, after: cursor, limit: 97)
            #expect(page.count <= 97)
            guard let last = page.last else { break }
            scanned += page
            cursor = last.cursor
        }
        #expect(scanned == Self.expected(records, in: arc))
        #expect(try engine.scan(arc: arc, limit: 5000) == scanned)
    }

    @Test("a wrapping arc starts at its first position, not at zero")
    func wrappingOrder() throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 800, seed: 6)
        let engine = try Self.loadedEngine(records, in: directory)
        let arc = RingArc(first: 0xF000_0000, last: 0x1000_0000)
        let scanned = try engine.scan(arc: arc, limit: 10_000)
        let split = try #require(scanned.firstIndex { $0.position <= arc.last })
        #expect(split > 0)
        #expect(scanned[..<split].allSatisfy { $0.position >= arc.first })
        #expect(scanned[split...].allSatisfy { $0.position <= arc.last })
    }

    @Test("a scan resumes from a saved cursor after a reopen, past deleted rows")
    func resumeAfterReopen() throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 1000, seed: 7)
        let arc = RingArc(first: 0xA000_0000, last: 0x6000_0000)
        var engine = try Self.loadedEngine(records, in: directory)
        let firstPart = try engine.scan(arc: arc, limit: 300)
        let cursor = try #require(firstPart.last?.cursor)
        // The row under the cursor disappears meanwhile (e.g. purged); resumption still works.
        try engine.deleteArc(RingArc(first: cursor.position, last: cursor.position))
        try engine.close()
        engine = try StorageEngine(path: directory.path(), sync: .normal)
        let rest = try engine.scan(arc: arc, after: cursor, limit: 10_000)
        #expect(firstPart + rest == Self.expected(records, in: arc))
    }

    @Test("count(arc:) totals rows, tombstones and bytes", arguments: arcs)
    func counts(arc: RingArc) throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 700, seed: 8)
        let engine = try Self.loadedEngine(records, in: directory)
        let inArc = Self.expected(records, in: arc)
        let totals = try engine.count(arc: arc)
        #expect(totals.records == inArc.count)
        #expect(totals.tombstones == inArc.count(where: \.isTombstone))
        #expect(totals.bytes == inArc.reduce(0) { $0 + $1.key.count + ($1.value?.count ?? 0) })
    }

    @Test("deleteArc removes exactly the arc", arguments: [arcs[1], arcs[2], arcs[3]])
    func deleteArc(arc: RingArc) throws {
        let directory = try TemporaryDirectory()
        let records = try randomRecords(count: 900, seed: 9)
        let engine = try Self.loadedEngine(records, in: directory)
        let all = expectedState(records)
        #expect(try engine.deleteArc(arc) == all.count { arc.contains($0.position) })
        #expect(try engine.count(arc: arc) == ArcTotals())
        #expect(try allRecords(engine) == all.filter { !arc.contains($0.position) })
    }

    @Test("bad scan arguments are errors")
    func badArguments() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let arc = RingArc(first: 100, last: 200)
        #expect(throws: StorageError.invalidArgument) { try engine.scan(arc: arc, limit: 0) }
        #expect(throws: StorageError.invalidArgument) {
            try engine.scan(arc: arc, after: ScanCursor(position: 201, key: [1]), limit: 10)
        }
        #expect(try engine.scan(arc: arc, after: ScanCursor(position: 150, key: []), limit: 10).isEmpty)
    }
}
