@testable import StorageEngine
@testable import StorageNode
import Testing

/// The sending side of a migration transfer: credit, in-order confirmation, retries, pacing.
@Suite struct TransferWindowTests {
    let start = ContinuousClock.now

    /// Records at made-up positions: only their cursors and sizes matter here.
    static func records(_ positions: [UInt32], valueBytes: Int = 10) -> [VersionedRecord] {
        positions.map {
            VersionedRecord(key: Array("k\($0)".utf8), position: $0, value: [UInt8](repeating: 1, count: valueBytes),
                            version: Version(timestamp: 1, writer: 1))
        }
    }

    /// Reads `positions` into the window and sends them as one batch; returns its number.
    static func sendBatch(_ window: inout TransferWindow, _ positions: [UInt32], at now: ContinuousClock.Instant) -> UInt64 {
        let batch = records(positions)
        window.read(batch)
        return window.send(bytes: batch.byteSize, at: now)
    }

    @Test func readingMovesTheNextCursorAcrossArcs() {
        var window = TransferWindow(from: MigrationCursor(), bytesPerSecond: 0, now: start)
        let batch = Self.records([5, 9], valueBytes: 10)
        window.read(batch)
        // "k5" and "k9": 2 key bytes and 10 value bytes each.
        #expect(window.next == MigrationCursor(arcIndex: 0, after: ScanCursor(position: 9, key: Array("k9".utf8)), keys: 2, bytes: 24))
        window.read([])
        #expect(window.next.keys == 2)
        window.finishArc()
        #expect(window.next == MigrationCursor(arcIndex: 1, after: nil, keys: 2, bytes: 24))
        #expect(window.confirmed == MigrationCursor())
        #expect(window.hasRoom && !window.isDrained)
        window.finishReading()
        #expect(!window.hasRoom && window.isDrained)
    }

    @Test func theReceiversCreditBoundsTheBatchesInFlight() {
        var window = TransferWindow(from: MigrationCursor(), bytesPerSecond: 0, now: start)
        // One batch before the receiver said anything.
        #expect(Self.sendBatch(&window, [1], at: start) == 1)
        #expect(!window.hasRoom)
        #expect(window.confirm(1, credit: 3) == .advanced)
        for position: UInt32 in [2, 3, 4] {
            #expect(window.hasRoom)
            _ = Self.sendBatch(&window, [position], at: start)
        }
        #expect(!window.hasRoom && window.inFlight.count == 3)
        // A credit of zero still lets one batch go.
        #expect(window.confirm(2, credit: 0) == .advanced)
        #expect(window.credit == 1 && !window.hasRoom)
    }

    @Test func confirmationsMoveTheCursorOnlyOverBatchesConfirmedInOrder() {
        var window = TransferWindow(from: MigrationCursor(), bytesPerSecond: 0, now: start)
        // An answer for a batch never sent: ignored, its credit too.
        #expect(window.confirm(9, credit: 3) == .unknown)
        #expect(window.credit == 1)
        let first = Self.sendBatch(&window, [1], at: start)
        let afterFirst = window.next
        let second = Self.sendBatch(&window, [2], at: start)
        let third = Self.sendBatch(&window, [3], at: start)
        #expect(window.confirm(second, credit: 3) == .held)
        #expect(window.confirmed == MigrationCursor())
        #expect(window.confirm(first, credit: 3) == .advanced)
        #expect(window.confirmed.keys == 2 && window.confirmed != afterFirst)
        #expect(window.confirm(third, credit: 3) == .advanced)
        #expect(window.confirmed == window.next && window.inFlight.isEmpty)
        // Confirmed twice: nothing to do.
        #expect(window.confirm(third, credit: 3) == .unknown)
        window.finishReading()
        #expect(window.isDrained)
    }

    @Test func aFailureRestartsFromTheConfirmedCursorAfterABackoffThatDoubles() {
        var window = TransferWindow(from: MigrationCursor(keys: 7, bytes: 70), bytesPerSecond: 0, now: start)
        let first = Self.sendBatch(&window, [1], at: start)
        #expect(window.confirm(first, credit: 4) == .advanced)
        let confirmed = window.confirmed
        let lost = Self.sendBatch(&window, [2], at: start)
        window.finishReading()
        #expect(window.fail(at: start) == .milliseconds(500))
        #expect(window.next == confirmed && window.confirmed == confirmed)
        #expect(window.inFlight.isEmpty && !window.exhausted && window.credit == 1)
        #expect(window.generation == 1 && window.failures == 1)
        // Held back for the backoff, though the rate is unlimited.
        #expect(window.wait(at: start + .milliseconds(100)) == .milliseconds(400))
        #expect(window.wait(at: start + .milliseconds(500)) == nil)
        // A late answer to a batch sent before the failure is ignored.
        #expect(window.confirm(lost, credit: 4) == .unknown)
        var backoffs: [Duration] = []
        for _ in 0..<5 { backoffs.append(window.fail(at: start)) }
        #expect(backoffs == [.seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)])
        #expect(window.generation == 6)
        // A confirmed batch ends the run of failures.
        let again = Self.sendBatch(&window, [2], at: start)
        #expect(window.confirm(again, credit: 4) == .advanced)
        #expect(window.failures == 0 && window.fail(at: start) == .milliseconds(500))
    }

    @Test func batchesArePacedByTheirBytes() {
        // 1000 bytes a second: a batch of 24 bytes holds the next one back 24 ms.
        var window = TransferWindow(from: MigrationCursor(), bytesPerSecond: 1000, now: start)
        #expect(window.wait(at: start) == nil)
        _ = Self.sendBatch(&window, [1, 2], at: start)
        #expect(window.wait(at: start) == .milliseconds(24))
        #expect(window.wait(at: start + .milliseconds(24)) == nil)
        #expect(window.pacer.chargedBytes == 24 && window.pacer.waits == 1)
        var unlimited = TransferWindow(from: MigrationCursor(), bytesPerSecond: 0, now: start)
        _ = Self.sendBatch(&unlimited, [1, 2], at: start)
        #expect(unlimited.wait(at: start) == nil)
    }

    @Test func aRecordsSizeIsItsKeyAndValueBytes() throws {
        let value = try VersionedRecord(key: Array("key".utf8), value: Array("value".utf8), version: Version(timestamp: 1, writer: 1))
        let tombstone = try VersionedRecord.tombstone(key: Array("gone".utf8), version: Version(timestamp: 2, writer: 1))
        let empty = try VersionedRecord(key: [7], value: [], version: Version(timestamp: 3, writer: 1))
        #expect(value.byteSize == 8 && tombstone.byteSize == 4 && empty.byteSize == 1)
        #expect([value, tombstone, empty].byteSize == 13)
        #expect(VersionedRecord.byteSize(keyBytes: 3, valueBytes: nil) == 3)
        #expect(VersionedRecord.byteSize(keyBytes: 3, valueBytes: 0) == 3)
    }
}
