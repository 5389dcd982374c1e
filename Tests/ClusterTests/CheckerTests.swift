import Testing

/// The fault-injection checker on hand-made histories: it must flag what a
/// broken store would do and accept what a correct one may do.
@Suite struct CheckerTests {
    static func put(_ id: Int, _ key: String, _ value: String, _ from: Int, _ to: Int,
                    _ outcome: CheckedOperation.Outcome = .ok) -> CheckedOperation {
        CheckedOperation(id: id, process: "writer", kind: .put, key: key, written: value, node: 0,
                         invoked: .milliseconds(from), completed: .milliseconds(to), outcome: outcome)
    }

    static func get(_ id: Int, _ key: String, _ read: String?, _ from: Int, _ to: Int, process: String = "reader-1",
                    _ outcome: CheckedOperation.Outcome = .ok) -> CheckedOperation {
        CheckedOperation(id: id, process: process, kind: .get, key: key, written: nil, node: 1,
                         invoked: .milliseconds(from), completed: .milliseconds(to), outcome: outcome, read: read)
    }

    static func check(_ operations: [CheckedOperation]) -> CheckReport {
        var report = CheckReport()
        Checker.check(operations, into: &report)
        return report
    }

    @Test func aCorrectHistoryIsClean() {
        let report = Self.check([
            Self.get(0, "k", nil, 0, 5),
            Self.put(1, "k", "w1", 10, 20),
            Self.get(2, "k", "w1", 25, 30),
            Self.put(3, "k", "w2", 40, 50),
            Self.get(4, "k", "w1", 45, 48),  // concurrent with w2: either is fine
            Self.get(5, "k", "w2", 46, 49),
            Self.get(6, "k", "w2", 60, 70, process: "final-r2"),
        ])
        #expect(report.isClean, "\(report)")
        #expect(report.operations == 7 && report.putsOK == 2 && report.getsOK == 4 && report.finalReads == 1)
    }

    @Test func aFinalReadMissingAnAcknowledgedWriteLosesIt() {
        let report = Self.check([
            Self.put(0, "k", "w1", 0, 10),
            Self.put(1, "k", "w2", 20, 30),
            Self.put(2, "k", "w3", 40, 50),
            Self.get(3, "k", "w1", 60, 70, process: "final-r3"),
            Self.get(4, "other", nil, 60, 70, process: "final-r3"),
            Self.put(5, "gone", "w4", 0, 5),
            Self.get(6, "gone", nil, 60, 70, process: "final-r2"),
        ])
        #expect(report.lostWrites.count == 3, "\(report)")  // w2, w3 and w4
    }

    @Test func readsOfValuesNeverWrittenOrCertainlyFailedArePhantoms() {
        let report = Self.check([
            Self.put(0, "k", "w1", 0, 10),
            Self.put(1, "k", "w2", 20, 30, .failed),
            Self.put(2, "j", "w3", 20, 30),
            Self.get(3, "k", "made-up", 40, 50),
            Self.get(4, "k", "w2", 40, 50),
            Self.get(5, "k", "w3", 40, 50),  // another key's value
            Self.put(6, "k", "w4", 60, 70),
            Self.get(7, "k", "w4", 40, 50),  // from the future
        ])
        #expect(report.phantomReads.count == 4, "\(report)")
    }

    @Test func aReadThatMissesAWriteAcknowledgedBeforeItBeganIsStale() {
        let report = Self.check([
            Self.put(0, "k", "w1", 0, 10),
            Self.put(1, "k", "w2", 20, 30),
            Self.get(2, "k", "w1", 40, 50),
            Self.get(3, "k", nil, 40, 50),
        ])
        #expect(report.staleReads.count == 2, "\(report)")
    }

    @Test func aWriteOfUnknownOutcomeMayTakeEffectLate() {
        // w1 timed out; it may be applied after w2 (a request delivered after a
        // partition healed), so reading it later is no loss.
        let report = Self.check([
            Self.put(0, "k", "w1", 0, 2000, .unknown),
            Self.put(1, "k", "w2", 2100, 2110),
            Self.get(2, "k", "w1", 3000, 3010),
            Self.get(3, "k", "w1", 4000, 4010, process: "final-r2"),
        ])
        #expect(report.isClean, "\(report)")
        #expect(report.putsUnknown == 1)
    }

    @Test func failedFinalReadsAreReported() {
        let report = Self.check([
            Self.put(0, "k", "w1", 0, 10),
            Self.get(1, "k", nil, 60, 70, process: "final-r3", .failed),
        ])
        #expect(report.failedFinalReads.count == 1)
        #expect(!report.isClean)
    }
}
