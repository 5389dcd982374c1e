import StorageEngine
import Testing

@Suite("Hint store")
struct HintStoreTests {
    @Test("hints are added, listed, counted and removed, across a reopen")
    func lifecycle() throws {
        let directory = try TemporaryDirectory()
        let forB = try (0..<25).map { try record("b-\($0)", $0 % 5 == 0 ? nil : "value-\($0)", ts: UInt64($0 + 1)) }
        let forC = try (0..<3).map { try record("c-\($0)", "v", ts: 100, writer: 7) }
        var ids: [Int64] = []
        do {
            let engine = try StorageEngine(path: directory.path(), sync: .full)
            ids = try engine.hints.addHints(forB, for: "127.0.0.1:7502")
            try engine.hints.addHints(forC.map { (target: "127.0.0.1:7503", record: $0) })
            #expect(ids == ids.sorted())
            #expect(Set(ids).count == ids.count)
            try engine.close()
        }
        let engine = try StorageEngine(path: directory.path(), sync: .full)
        let store = engine.hints
        #expect(try store.pendingHintCount() == HintCounts(total: 28, byTarget: ["127.0.0.1:7502": 25, "127.0.0.1:7503": 3]))

        // Page through B's hints, oldest first.
        var listed: [Hint] = []
        var after: Int64 = 0
        while true {
            let page = try store.hints(for: "127.0.0.1:7502", after: after, limit: 10)
            guard let last = page.last else { break }
            listed += page
            after = last.id
        }
        #expect(listed.map(\.id) == ids)
        #expect(listed.map(\.record) == forB)
        #expect(listed.allSatisfy { $0.target == "127.0.0.1:7502" })
        #expect(try store.hints(for: "127.0.0.1:7509", limit: 10).isEmpty)

        // Acknowledged hints go away; unknown ids are ignored.
        #expect(try store.removeHints(Array(ids.prefix(20)) + [999_999]) == 20)
        #expect(try store.hints(for: "127.0.0.1:7502", limit: 100).map(\.id) == Array(ids.suffix(5)))
        #expect(try store.removeAllHints(for: "127.0.0.1:7503") == 3)
        #expect(try store.pendingHintCount() == HintCounts(total: 5, byTarget: ["127.0.0.1:7502": 5]))
    }

    @Test("hint ids are never reused, even after the newest is removed")
    func idsNotReused() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        let first = try engine.hints.addHints([record("k", "v", ts: 1)], for: "n:1")
        try engine.hints.removeHints(first)
        try engine.close()
        let reopened = try StorageEngine(path: directory.path(), sync: .normal)
        let second = try reopened.hints.addHints([record("k", "v", ts: 2)], for: "n:1")
        #expect(second[0] > first[0])
    }

    @Test("bad hint input is an error and stores nothing")
    func badInput() throws {
        let directory = try TemporaryDirectory()
        let engine = try StorageEngine(path: directory.path(), sync: .normal)
        #expect(throws: StorageError.invalidArgument) {
            try engine.hints.addHints([(target: "n:1", record: record("a", "v", ts: 1)), (target: "", record: record("b", "v", ts: 1))])
        }
        #expect(throws: StorageError.invalidArgument) { try engine.hints.hints(for: "n:1", limit: 0) }
        #expect(try engine.hints.pendingHintCount() == HintCounts())
    }
}
