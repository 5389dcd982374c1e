import Ring
import StorageEngine
import TestKit
import Testing

/// Arc-long work done in bounded steps (what a node runs one step per reactor
/// turn) gives what the one-shot forms give.
@Suite("Arc work in steps")
struct ArcStepsTests {
    static let arcs = [
        RingArc.wholeRing,
        RingArc(first: 1 << 30, last: 3 << 30),
        RingArc(first: 3 << 30, last: 1 << 29),  // wraps
        RingArc(first: 77, last: 77),
    ]

    /// A database of 1,500 rows, a tenth of them tombstones.
    static func filled(_ directory: TemporaryDirectory) throws -> StorageEngine {
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        try engine.apply(try randomRecords(count: 1_500, seed: 31))
        return engine
    }

    @Test("counting an arc in steps of any size gives the one-shot count", arguments: [1, 7, 250, 100_000])
    func countInSteps(rows: Int) throws {
        let directory = try TemporaryDirectory()
        let engine = try Self.filled(directory)
        for arc in Self.arcs {
            var pass = ArcPass.count(arc)
            var steps = 0
            while !pass.isFinished {
                try engine.advance(&pass, rows: rows)
                steps += 1
            }
            #expect(pass.result == (try engine.count(arc: arc)), "arc \(arc)")
            // Each step visits at most `rows` rows: one more step than full ones.
            #expect(steps == pass.result.records / rows + 1, "arc \(arc)")
        }
    }

    @Test("a digest hashed in steps equals the one-shot digest", arguments: [1, 13, 100_000])
    func digestInSteps(rows: Int) throws {
        let directory = try TemporaryDirectory()
        let engine = try Self.filled(directory)
        for arc in Self.arcs {
            var pass = try ArcPass.digest(arc, leaves: 64)
            #expect(pass.digest == nil)
            while !pass.isFinished { try engine.advance(&pass, rows: rows) }
            #expect(pass.digest == (try engine.digest(arc: arc, leaves: 64)), "arc \(arc)")
        }
        #expect(throws: StorageError.self) { try ArcPass.digest(.wholeRing, leaves: 0) }
        var pass = ArcPass.count(.wholeRing)
        #expect(throws: StorageError.self) { try engine.advance(&pass, rows: 0) }
    }

    @Test("rows written ahead of the cursor between steps are counted")
    func rowsAheadAreSeen() throws {
        let directory = try TemporaryDirectory()
        let engine = try Self.filled(directory)
        var pass = ArcPass.count(.wholeRing)
        try engine.advance(&pass, rows: 1)
        let candidates = try (0..<100).map { try record("late-\($0)", "v", ts: 1) }
        let late = try #require(candidates.first { $0.position > 3 << 30 })
        try engine.apply([late])
        while !pass.isFinished { try engine.advance(&pass, rows: 100) }
        #expect(pass.result == (try engine.count(arc: .wholeRing)))
    }

    @Test("deleting arcs and purging tombstones in limited steps removes exactly what the one-shot forms remove, totals kept")
    func deletesInSteps() throws {
        let one = try TemporaryDirectory()
        let two = try TemporaryDirectory()
        let stepped = try Self.filled(one)
        let oneShot = try Self.filled(two)
        let garbage = [Self.arcs[1], Self.arcs[2]]
        var deleted = 0
        var steps = 0
        while true {
            let step = try stepped.deleteArcs(garbage, limit: 100)
            #expect(step.deleted <= 100)
            deleted += step.deleted
            steps += 1
            if !step.more { break }
        }
        #expect(deleted == (try oneShot.deleteArcs(garbage)))
        #expect(steps > 1)
        var purged = 0
        while true {
            let step = try stepped.purgeTombstones(olderThan: .max, limit: 16)
            purged += step.purged
            if !step.more { break }
        }
        #expect(purged == (try oneShot.purgeTombstones(olderThan: .max)))
        #expect(purged > 16)
        for engine in [stepped, oneShot] {
            var kept = try engine.stats()
            var counted = try engine.countedStats()
            kept.fileBytes = 0
            counted.fileBytes = 0
            #expect(kept == counted)
        }
        #expect(try stepped.count(arc: .wholeRing) == oneShot.count(arc: .wholeRing))
        #expect(throws: StorageError.self) { try stepped.deleteArcs(garbage, limit: 0) }
    }
}
