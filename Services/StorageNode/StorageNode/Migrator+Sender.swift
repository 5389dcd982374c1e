import Foundation
import RPC
import Ring
import RingProtocol
import StorageEngine

/// The sending end of migration: a transfer's arcs are counted, then streamed
/// to the receiver in batches, as many unanswered as its window allows (see
/// ``TransferWindow``); every batch confirmed in order saves the cursor.
extension Migrator {
    /// One transfer leaving this node: what the plan says of it, and its window.
    final class Outgoing {
        let id: UInt64
        let to: String
        let arcs: [RingArc]
        let planVersion: UInt64
        var window: TransferWindow
        var cancelled = false
        var completing = false
        /// A timer will pump it once the pacer lets the next batch go.
        var waiting = false
        /// Its arcs are being counted (the expected totals); nothing is sent until then.
        var counting = true
        var expectedKeys = 0
        var expectedBytes = 0
        var lastReport: (at: ContinuousClock.Instant, bytes: Int)
        var lastFailureReport: ContinuousClock.Instant?
        let startedAt: ContinuousClock.Instant

        /// The cursor confirmed so far (what a restart resumes from).
        var confirmed: MigrationCursor { window.confirmed }

        init(_ transfer: WireTransfer, planVersion: UInt64, cursor: MigrationCursor, rateLimit: Int, now: ContinuousClock.Instant) {
            id = transfer.id
            to = transfer.to
            arcs = transfer.arcs.map { RingArc(first: $0.first, last: $0.last) }
            self.planVersion = planVersion
            window = TransferWindow(from: cursor, bytesPerSecond: rateLimit, now: now)
            lastReport = (now, cursor.bytes)
            startedAt = now
        }
    }

    func startTransfer(_ wire: WireTransfer, planVersion: UInt64) {
        let saved = (try? store.engine.migrationCursors.load(transfer: wire.id)) ?? nil
        let transfer = Outgoing(wire, planVersion: planVersion, cursor: saved ?? MigrationCursor(), rateLimit: settings.rateLimit,
                                now: reactor.now)
        outgoing[wire.id] = transfer
        // The expected totals, counted a step per reactor turn: an arc can hold
        // any number of rows, and this runs on the reactor thread.
        var passes = transfer.arcs.map { ArcPass.count($0) }
        var next = 0
        reactor.runInSteps { [weak self, weak transfer] in
            guard let self, let transfer, !transfer.cancelled else { return true }
            // Up to rowsPerRead rows a turn, across as many arcs as that takes.
            var budget = ArcSteps.rowsPerRead
            while next < passes.count, budget > 0 {
                let before = passes[next].result.records
                do {
                    try store.engine.advance(&passes[next], rows: budget)
                } catch {
                    // Only the progress figures depend on the count.
                    logger.warning("migration.transfer.count_failed", metadata: ["transfer.id": "\(transfer.id)", "storage.error": "\(error)"])
                    next = passes.count
                    break
                }
                budget -= max(1, passes[next].result.records - before)
                if passes[next].isFinished { next += 1 }
            }
            guard next == passes.count else { return false }
            begin(transfer, expected: passes.reduce(into: ArcTotals()) { total, pass in
                total.records += pass.result.records
                total.bytes += pass.result.bytes
            })
            return true
        }
    }

    /// The transfer's arcs are counted: it starts sending.
    private func begin(_ transfer: Outgoing, expected totals: ArcTotals) {
        transfer.counting = false
        transfer.expectedKeys = totals.records
        transfer.expectedBytes = totals.bytes
        logger.info("migration.transfer.started", metadata: [
            "transfer.id": "\(transfer.id)", "transfer.to": "\(transfer.to)", "transfer.arcs": "\(transfer.arcs.count)",
            "transfer.expected_keys": "\(totals.records)", "transfer.resumed_at_keys": "\(transfer.confirmed.keys)",
        ])
        report("migration_started", details(transfer)) { _ in }
        pump(transfer)
    }

    /// Sends batches while the credit and the rate limit allow.
    private func pump(_ transfer: Outgoing) {
        guard !transfer.cancelled, !transfer.counting, !transfer.completing, !transfer.waiting else { return }
        while transfer.window.hasRoom {
            if let wait = transfer.window.wait(at: reactor.now) {
                transfer.waiting = true
                reactor.after(wait) { [weak self, weak transfer] in
                    guard let self, let transfer else { return }
                    transfer.waiting = false
                    pump(transfer)
                }
                return
            }
            let records: [VersionedRecord]
            do {
                records = try nextBatch(transfer)
            } catch {
                failed(transfer, "reading the arcs failed: \(error)")
                return
            }
            guard !records.isEmpty else { break }
            send(records, transfer)
        }
        if transfer.window.isDrained { complete(transfer) }
    }

    /// The next batch from where the window reads next, moving it on (and across arcs).
    private func nextBatch(_ transfer: Outgoing) throws(StorageError) -> [VersionedRecord] {
        while transfer.window.next.arcIndex < transfer.arcs.count {
            let arc = transfer.arcs[transfer.window.next.arcIndex]
            var records = try store.engine.scan(arc: arc, after: transfer.window.next.after, limit: settings.batchKeys)
            var bytes = 0
            if let cut = records.firstIndex(where: { record in
                bytes += record.byteSize
                return bytes > settings.batchBytes
            }) {
                records.removeSubrange(max(cut, 1)...)
            }
            if !records.isEmpty {
                transfer.window.read(records)
                return records
            }
            transfer.window.finishArc()
        }
        transfer.window.finishReading()
        return []
    }

    private func send(_ records: [VersionedRecord], _ transfer: Outgoing) {
        let batch = transfer.window.send(bytes: records.byteSize, at: reactor.now)
        NodeMetrics.shared.migrated(sent: records)
        guard let client = peers.client(for: transfer.to) else {
            failed(transfer, "no client for \(transfer.to)")
            return
        }
        let fences: [StorageEngine.Fence]
        do {
            fences = try store.engine.fences(forKeys: records.map(\.key))
        } catch {
            failed(transfer, "reading fencing tokens failed: \(error)")
            return
        }
        let request = WireMigrateBatchRequest.with {
            $0.planVersion = transfer.planVersion
            $0.transferID = transfer.id
            $0.from = address
            $0.batch = batch
            $0.records = records.map(\.wire)
            $0.fences = fences.map { fence in
                WireFenceRecord.with {
                    $0.key = Data(fence.key)
                    $0.name = fence.name
                    $0.token = fence.token
                }
            }
        }
        let generation = transfer.window.generation
        client.call(StorageMethods.migrateBatch, request, timeout: .seconds(5)) {
            [weak self, weak transfer] result in
            guard let self, let transfer, !transfer.cancelled, transfer.window.generation == generation else { return }
            switch result {
            case .success(let reply): confirmed(batch, of: transfer, credit: Int(reply.credit))
            case .failure(let error): failed(transfer, "batch \(batch) to \(transfer.to): \(error)")
            }
        }
    }

    private func confirmed(_ batch: UInt64, of transfer: Outgoing, credit: Int) {
        switch transfer.window.confirm(batch, credit: credit) {
        case .unknown:
            return
        case .held:
            break
        case .advanced:
            do {
                try store.engine.migrationCursors.save(transfer.confirmed, transfer: transfer.id)
            } catch {
                logger.warning("migration.cursor.save.failed", metadata: ["transfer.id": "\(transfer.id)", "storage.error": "\(error)"])
            }
        }
        pump(transfer)
    }

    /// A batch failed: restart from the last confirmed batch after a backoff.
    private func failed(_ transfer: Outgoing, _ reason: String) {
        let backoff = transfer.window.fail(at: reactor.now)
        logger.notice("migration.transfer.retrying", metadata: [
            "transfer.id": "\(transfer.id)", "transfer.to": "\(transfer.to)", "migration.reason": "\(reason)",
            "migration.backoff": "\(backoff)",
        ])
        let now = reactor.now
        if transfer.lastFailureReport.map({ now - $0 >= .seconds(5) }) ?? true {
            transfer.lastFailureReport = now
            var details = details(transfer)
            details.reason = reason
            details.willRetry = true
            report("migration_failed", details) { _ in }
        }
        pump(transfer)
    }
}
