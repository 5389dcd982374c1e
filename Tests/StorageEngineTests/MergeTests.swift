import StorageEngine
import Testing
import TestKit

@Suite("Merging versions")
struct MergeTests {
    /// Versions of one key: values, tombstones, and equal timestamps told apart by writer.
    static func versions(of key: String) throws -> [VersionedRecord] {
        [
            try record(key, "a", ts: 10, writer: 1),
            try record(key, nil, ts: 20, writer: 1),
            try record(key, "c", ts: 20, writer: 2),
            try record(key, "d", ts: 15, writer: 9),
            try record(key, nil, ts: 30, writer: 1),
        ]
    }

    @Test("versions order by timestamp, then writer id, as unsigned 64-bit numbers")
    func versionOrder() {
        #expect(Version(timestamp: 1, writer: 9) < Version(timestamp: 2, writer: 1))
        #expect(Version(timestamp: 2, writer: 1) < Version(timestamp: 2, writer: 2))
        #expect(Version(timestamp: .max, writer: 0) > Version(timestamp: 1 << 63, writer: .max))
        #expect(Version(timestamp: 5, writer: 3).description == "5@3")
    }

    @Test("every permutation of the same versions gives the same stored record")
    func everyPermutation() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let orders = permutations(of: Array(0..<5))
        #expect(orders.count == 120)
        for (number, order) in orders.enumerated() {
            let key = "perm-\(number)"
            let versions = try Self.versions(of: key)
            var newest: Version?
            for index in order {
                let result = try #require(try engine.apply([versions[index]]).first)
                // Applied exactly when the record is newer than everything before it.
                if let stored = newest, stored >= versions[index].version {
                    #expect(result == .superseded(stored: stored))
                } else {
                    #expect(result == .applied)
                    newest = versions[index].version
                }
            }
            let stored = try #require(try engine.get(key: Array(key.utf8)))
            #expect(stored == versions[4])
        }
    }

    @Test("random orders and batch splits of the same records give the same state", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomOrders(seed: UInt64) throws {
        var generator = SeededGenerator(seed: seed)
        var records: [VersionedRecord] = []
        for index in 0..<300 {
            let key = "key-\(Int.random(in: 0..<25, using: &generator))"
            let value = Bool.random(using: &generator) ? nil : "value-\(index)"
            records.append(try record(key, value, ts: UInt64.random(in: 1...40, using: &generator), writer: UInt64.random(in: 1...3, using: &generator)))
        }
        let expected = expectedState(records)
        for _ in 0..<3 {
            let directory = try TemporaryDirectory()
            let engine = try StorageEngine(path: directory.path(), sync: .normal)
            var shuffled = records.shuffled(using: &generator)
            while !shuffled.isEmpty {
                let size = Int.random(in: 1...60, using: &generator)
                try engine.apply(Array(shuffled.prefix(size)))
                shuffled.removeFirst(min(size, shuffled.count))
            }
            #expect(try allRecords(engine) == expected)
        }
    }

    @Test("re-applying the same records is a no-op")
    func idempotent() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let records = try randomRecords(count: 200, seed: 21)
        #expect(try engine.apply(records).allSatisfy { $0.wasApplied })
        let before = try allRecords(engine)
        let statsBefore = try engine.stats()
        let again = try engine.apply(records)
        #expect(again == records.map { .superseded(stored: $0.version) })
        #expect(try allRecords(engine) == before)
        #expect(try engine.stats() == statsBefore)
    }

    @Test("a tombstone beats an older value and loses to a newer one")
    func tombstoneAgainstValues() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let key = Array("doc".utf8)
        try engine.apply([record("doc", "v1", ts: 10)])
        #expect(try engine.apply([record("doc", nil, ts: 20)]) == [.applied])
        #expect(try engine.get(key: key)?.isTombstone == true)
        #expect(try engine.apply([record("doc", "late", ts: 15)]) == [.superseded(stored: Version(timestamp: 20, writer: 1))])
        #expect(try engine.get(key: key)?.isTombstone == true)
        #expect(try engine.apply([record("doc", "v3", ts: 30)]) == [.applied])
        #expect(try engine.get(key: key)?.value == Array("v3".utf8))
    }

    @Test("within one batch, later duplicates merge against earlier ones")
    func duplicatesInBatch() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let results = try engine.apply([
            record("k", "new", ts: 5, writer: 2), record("k", "old", ts: 5, writer: 1), record("k", "newest", ts: 6),
        ])
        #expect(results == [.applied, .superseded(stored: Version(timestamp: 5, writer: 2)), .applied])
        #expect(try engine.get(key: Array("k".utf8))?.value == Array("newest".utf8))
    }

    @Test("versions above Int64.max order as unsigned numbers in the database")
    func largeVersions() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let low = try record("big", "low", ts: 1 << 62, writer: .max)
        let high = try record("big", "high", ts: 1 << 63, writer: 0)
        let higher = try record("big", "higher", ts: 1 << 63, writer: 1 << 63)
        try engine.apply([higher, low, high])
        #expect(try engine.get(key: Array("big".utf8)) == higher)
    }

    @Test("merge is idempotent, commutative and associative")
    func mergeLaws() throws {
        var generator = SeededGenerator(seed: 99)
        let versions = try Self.versions(of: "law") + [record("law", "c2", ts: 20, writer: 2), record("law", nil, ts: 20, writer: 2)]
        for _ in 0..<500 {
            let a = versions.randomElement(using: &generator)!
            let b = versions.randomElement(using: &generator)!
            let c = versions.randomElement(using: &generator)!
            #expect(a.merged(with: a) == a)
            #expect(a.merged(with: b) == b.merged(with: a))
            #expect(a.merged(with: b).merged(with: c) == a.merged(with: b.merged(with: c)))
        }
    }

    @Test("equal versions with different contents resolve the same way in memory and in the engine")
    func equalVersionsDifferentContents() throws {
        let contenders = [try record("tie", nil, ts: 7), try record("tie", "a", ts: 7), try record("tie", "b", ts: 7)]
        let winner = contenders.reduce(contenders[0]) { $0.merged(with: $1) }
        #expect(winner.value == Array("b".utf8))
        for order in permutations(of: Array(0..<3)) {
            let directory = try TemporaryDirectory()
            let engine = try StorageEngine(path: directory.path(), sync: .normal)
            try engine.apply(order.map { contenders[$0] })
            #expect(try engine.get(key: Array("tie".utf8)) == winner)
        }
    }
}

/// Every ordering of `elements`.
func permutations<Element>(of elements: [Element]) -> [[Element]] {
    guard elements.count > 1 else { return [elements] }
    return elements.indices.flatMap { index in
        var rest = elements
        let head = rest.remove(at: index)
        return permutations(of: rest).map { [head] + $0 }
    }
}
