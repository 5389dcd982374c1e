import Foundation
import Logging
import RPC
import Ring
import RingProtocol
import StorageEngine

/// Migration on a storage node, both ends of it:
///
/// - Sender: for every transfer of placement's plan that starts here, streams
///   the rows (versions and tombstones) of its arcs to the receiver in batches.
///   At most `credit` batches are unanswered at a time; the receiver grants
///   the credit in each reply. An optional rate limit spaces the batches.
///   After each confirmed batch the cursor is saved, so a restart of either
///   side resumes from the last confirmed batch. Progress goes to placement
///   (`ReportMigration`), which relays it on the `migration` topic.
/// - Receiver: merges batches through the group commit and answers once they
///   are durable; refuses batches of a plan newer than its own (it catches up
///   first).
/// - Sweeper: once the plan settled an arc, a node that is no longer one of
///   its replicas deletes it. It sweeps only while its plan is as new as the
///   one placement reported last, so it never acts on a stale plan.
final class Migrator {
    struct Settings {
        var batchKeys = 512
        var batchBytes = 1 << 20
        /// Bytes per second per transfer; 0: unlimited.
        var rateLimit = 0
        /// The most batches a receiver holds unanswered, over all its senders.
        var maxCredit = 8
        var progressInterval: Duration = .seconds(1)
    }

    private let address: String
    private let store: LocalStore
    private let clock: NodeClock
    private let peers: PeerClients
    private let reactor: Reactor
    private let settings: Settings
    private let report: (String, WireMigrationDetails, @escaping (Result<WireReportMigrationReply, RPCError>) -> Void) -> Void
    private let refreshPlan: () -> Void
    private var logger: Logger

    private var view: RingView?
    private var outgoing: [UInt64: Outgoing] = [:]
    /// Transfers this node finished and reported; not restarted while the plan still lists them.
    private var finished: Set<UInt64> = []
    /// Batches received and not yet answered, for the credit.
    private var receiving = 0
    /// The plan version placement reported last (heartbeat), and the one swept at.
    private var placementPlanVersion: UInt64 = 0
    private var sweptVersion: UInt64?
    /// Whether this node may delete data (a joined member that was not removed).
    var maySweep: () -> Bool = { true }

    /// Figures for Health.
    private(set) var sentKeys = 0
    private(set) var receivedKeys = 0
    private(set) var sweptKeys = 0
    var activeTransfers: Int { outgoing.count }

    init(address: String, store: LocalStore, clock: NodeClock, peers: PeerClients, reactor: Reactor,
         settings: Settings, logger: Logger,
         report: @escaping (String, WireMigrationDetails, @escaping (Result<WireReportMigrationReply, RPCError>) -> Void) -> Void,
         refreshPlan: @escaping () -> Void) {
        self.address = address
        self.store = store
        self.clock = clock
        self.peers = peers
        self.reactor = reactor
        self.settings = settings
        self.logger = logger
        self.report = report
        self.refreshPlan = refreshPlan
        reactor.every(settings.progressInterval) { [unowned self] in reportProgress() }
    }

    func register(on rpc: RPCServer) {
        rpc.register(StorageMethods.migrateBatch) { [unowned self, unowned rpc] context, request in receive(context, request, rpc: rpc) }
    }

    // MARK: Following the plan

    /// A new ring or plan: starts the transfers that leave from here, stops
    /// the ones the plan no longer has, and sweeps what settled.
    func planChanged(_ view: RingView) {
        self.view = view
        let plan = view.info.plan
        let mine = plan.transfers.filter { $0.from == address && !$0.done }
        let current = Set(mine.map(\.id))
        for (id, transfer) in outgoing where !current.contains(id) {
            transfer.cancelled = true
            outgoing.removeValue(forKey: id)
            try? store.engine.migrationCursors.remove(transfer: id)
            if transfer.completing {
                // Placement settled it before our report's answer came back.
                finished.insert(id)
                logCompleted(transfer)
            } else {
                logger.info("migration.transfer.cancelled", metadata: ["transfer.id": "\(id)", "transfer.to": "\(transfer.to)"])
            }
        }
        finished.formIntersection(current)
        for transfer in mine where outgoing[transfer.id] == nil && !finished.contains(transfer.id) {
            start(transfer, planVersion: plan.version)
        }
        // Cursors of transfers no plan has any more.
        if let saved = try? store.engine.migrationCursors.transferIDs() {
            for id in saved where !current.contains(id) { try? store.engine.migrationCursors.remove(transfer: id) }
        }
        sweepIfCurrent()
    }

    /// Placement's plan version from a heartbeat reply.
    func placementReported(planVersion: UInt64) {
        placementPlanVersion = max(placementPlanVersion, planVersion)
        sweepIfCurrent()
    }

    // MARK: Sending

    private final class Outgoing {
        let id: UInt64
        let to: String
        let arcs: [RingArc]
        let planVersion: UInt64
        var confirmed: MigrationCursor
        /// Where the next batch is read from.
        var next: MigrationCursor
        var exhausted = false
        var nextBatch: UInt64 = 1
        /// Unanswered batches in send order, with the cursor each confirms.
        var inFlight: [(batch: UInt64, end: MigrationCursor, done: Bool)] = []
        var credit = 1
        /// Incremented on every restart from `confirmed`, so late replies are ignored.
        var generation = 0
        var cancelled = false
        var completing = false
        var failures = 0
        var waiting = false
        /// Its arcs are being counted (the expected totals); nothing is sent until then.
        var counting = true
        var notBefore: ContinuousClock.Instant
        var expectedKeys = 0
        var expectedBytes = 0
        var lastReport: (at: ContinuousClock.Instant, bytes: Int)
        var lastFailureReport: ContinuousClock.Instant?
        let startedAt: ContinuousClock.Instant

        init(_ transfer: WireTransfer, planVersion: UInt64, cursor: MigrationCursor, now: ContinuousClock.Instant) {
            id = transfer.id
            to = transfer.to
            arcs = transfer.arcs.map { RingArc(first: $0.first, last: $0.last) }
            self.planVersion = planVersion
            confirmed = cursor
            next = cursor
            notBefore = now
            lastReport = (now, cursor.bytes)
            startedAt = now
        }
    }

    private func start(_ wire: WireTransfer, planVersion: UInt64) {
        let saved = (try? store.engine.migrationCursors.load(transfer: wire.id)) ?? nil
        let transfer = Outgoing(wire, planVersion: planVersion, cursor: saved ?? MigrationCursor(), now: reactor.now)
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
        while !transfer.exhausted && transfer.inFlight.count < max(1, transfer.credit) {
            let now = reactor.now
            if now < transfer.notBefore {
                transfer.waiting = true
                reactor.after(transfer.notBefore - now) { [weak self, weak transfer] in
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
        if transfer.exhausted && transfer.inFlight.isEmpty { complete(transfer) }
    }

    /// The next batch from `transfer.next`, advancing it (and across arcs).
    private func nextBatch(_ transfer: Outgoing) throws(StorageError) -> [VersionedRecord] {
        while transfer.next.arcIndex < transfer.arcs.count {
            let arc = transfer.arcs[transfer.next.arcIndex]
            var records = try store.engine.scan(arc: arc, after: transfer.next.after, limit: settings.batchKeys)
            var bytes = 0
            if let cut = records.firstIndex(where: { record in
                bytes += record.key.count + (record.value?.count ?? 0)
                return bytes > settings.batchBytes
            }) {
                records.removeSubrange(max(cut, 1)...)
            }
            if let last = records.last {
                transfer.next.after = last.cursor
                transfer.next.keys += records.count
                transfer.next.bytes += records.reduce(0) { $0 + $1.key.count + ($1.value?.count ?? 0) }
                return records
            }
            transfer.next.arcIndex += 1
            transfer.next.after = nil
        }
        transfer.exhausted = true
        return []
    }

    private func send(_ records: [VersionedRecord], _ transfer: Outgoing) {
        let batch = transfer.nextBatch
        transfer.nextBatch += 1
        transfer.inFlight.append((batch, transfer.next, false))
        let bytes = records.reduce(0) { $0 + $1.key.count + ($1.value?.count ?? 0) }
        if settings.rateLimit > 0 {
            let delay = Duration.seconds(Double(bytes) / Double(settings.rateLimit))
            transfer.notBefore = max(transfer.notBefore, reactor.now) + delay
        }
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
        let generation = transfer.generation
        client.call(StorageMethods.migrateBatch, request, timeout: .seconds(5)) {
            [weak self, weak transfer] result in
            guard let self, let transfer, !transfer.cancelled, transfer.generation == generation else { return }
            switch result {
            case .success(let reply): confirmed(batch, of: transfer, credit: Int(reply.credit))
            case .failure(let error): failed(transfer, "batch \(batch) to \(transfer.to): \(error)")
            }
        }
    }

    private func confirmed(_ batch: UInt64, of transfer: Outgoing, credit: Int) {
        guard let index = transfer.inFlight.firstIndex(where: { $0.batch == batch }) else { return }
        transfer.inFlight[index].done = true
        transfer.credit = max(1, credit)
        transfer.failures = 0
        var advanced = false
        while let first = transfer.inFlight.first, first.done {
            transfer.confirmed = first.end
            transfer.inFlight.removeFirst()
            advanced = true
        }
        if advanced {
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
        transfer.generation += 1
        transfer.inFlight.removeAll()
        transfer.next = transfer.confirmed
        transfer.exhausted = false
        transfer.failures += 1
        transfer.credit = 1
        let backoff = Duration.milliseconds(min(5000, 250 << min(transfer.failures, 5)))
        transfer.notBefore = reactor.now + backoff
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

    /// Every row sent and confirmed: tell placement, which settles the arcs.
    private func complete(_ transfer: Outgoing) {
        guard !transfer.completing else { return }
        transfer.completing = true
        var details = details(transfer)
        let elapsed = reactor.now - transfer.startedAt
        let seconds = Self.seconds(elapsed)
        details.rate = seconds > 0 ? UInt64(Double(transfer.confirmed.bytes) / seconds) : 0
        report("migration_completed", details) { [weak self, weak transfer] result in
            guard let self, let transfer, !transfer.cancelled else { return }
            switch result {
            case .success:
                finished.insert(transfer.id)
                outgoing.removeValue(forKey: transfer.id)
                try? store.engine.migrationCursors.remove(transfer: transfer.id)
                logCompleted(transfer)
            case .failure(let error):
                // Placement is away: say it again shortly.
                logger.notice("migration.report.failed", metadata: ["transfer.id": "\(transfer.id)", "rpc.error": "\(error)"])
                reactor.after(.seconds(1)) { [weak self, weak transfer] in
                    guard let self, let transfer else { return }
                    transfer.completing = false
                    complete(transfer)
                }
            }
        }
    }

    private func logCompleted(_ transfer: Outgoing) {
        sentKeys += transfer.confirmed.keys
        let elapsed = reactor.now - transfer.startedAt
        let seconds = Self.seconds(elapsed)
        logger.info("migration.transfer.completed", metadata: [
            "transfer.id": "\(transfer.id)", "transfer.to": "\(transfer.to)", "transfer.keys": "\(transfer.confirmed.keys)",
            "transfer.bytes": "\(transfer.confirmed.bytes)", "transfer.seconds": "\(String(format: "%.3f", seconds))",
            "transfer.mb_per_s": "\(String(format: "%.2f", seconds > 0 ? Double(transfer.confirmed.bytes) / seconds / 1e6 : 0))",
        ])
    }

    private static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func reportProgress() {
        let now = reactor.now
        for transfer in outgoing.values where !transfer.completing {
            let elapsed = now - transfer.lastReport.at
            let seconds = Self.seconds(elapsed)
            var details = details(transfer)
            details.rate = seconds > 0 ? UInt64(Double(max(0, transfer.confirmed.bytes - transfer.lastReport.bytes)) / seconds) : 0
            transfer.lastReport = (now, transfer.confirmed.bytes)
            report("migration_progress", details) { [weak self, weak transfer] result in
                guard let self, let transfer, case .success(let reply) = result, !reply.transferCurrent, !transfer.cancelled else { return }
                // Placement no longer has it: our plan is behind.
                logger.info("migration.transfer.stale", metadata: ["transfer.id": "\(transfer.id)"])
                refreshPlan()
            }
        }
    }

    private func details(_ transfer: Outgoing) -> WireMigrationDetails {
        WireMigrationDetails.with {
            $0.transferID = transfer.id
            $0.planVersion = transfer.planVersion
            $0.from = address
            $0.to = transfer.to
            $0.arcs = UInt32(transfer.arcs.count)
            if let first = transfer.arcs.first {
                $0.arcStart = first.first
                $0.arcEnd = first.last
            }
            $0.keys = UInt64(transfer.confirmed.keys)
            $0.bytes = UInt64(transfer.confirmed.bytes)
            $0.expectedKeys = UInt64(transfer.expectedKeys)
            $0.expectedBytes = UInt64(transfer.expectedBytes)
        }
    }

    // MARK: Receiving

    private func receive(_ context: RequestContext, _ request: WireMigrateBatchRequest, rpc: RPCServer) -> HandlerOutcome<WireMigrateBatchReply> {
        let known = view?.planVersion ?? 0
        if request.planVersion > known {
            refreshPlan()
            return .failure(.unavailable("this node has plan \(known), the batch is for plan \(request.planVersion); it is catching up"))
        }
        var records: [VersionedRecord] = []
        records.reserveCapacity(request.records.count)
        for wire in request.records {
            guard let record = try? VersionedRecord(wire: wire) else {
                return .failure(.invalidArgument("batch \(request.batch) has a record with an empty key"))
            }
            records.append(record)
        }
        // Rows stamped too far ahead of our clock are dropped (and logged), not stored.
        records = clock.admitted(records, from: "migration batch from \(request.from)")
        // Fencing tokens first: once a record is here, a stale fenced write of its key must be refused here too.
        do {
            try store.engine.remember(request.fences.map { StorageEngine.Fence(key: [UInt8]($0.key), name: $0.name, token: $0.token) })
        } catch {
            return .failure(.internalError("remembering fencing tokens failed: \(error)"))
        }
        receiving += 1
        store.enqueue(records) { [unowned self] result in
            receiving -= 1
            switch result {
            case .success(let applied):
                receivedKeys += records.count
                rpc.reply(to: context, .success(WireMigrateBatchReply.with {
                    $0.credit = UInt32(max(1, settings.maxCredit - receiving))
                    $0.applied = UInt32(applied.count(where: \.wasApplied))
                }))
            case .failure(let error):
                rpc.fail(context, .internalError("commit failed: \(error)"))
            }
        }
        return .parked
    }

    // MARK: Sweeping

    /// Deletes the arcs this node holds but no longer owns, when its plan is
    /// current and changed since the last sweep.
    private func sweepIfCurrent() {
        guard let view, view.ring != nil, maySweep(), view.planVersion >= placementPlanVersion,
              sweptVersion != view.planVersion
        else { return }
        sweptVersion = view.planVersion
        let garbage = view.garbage(for: address)
        guard !garbage.isEmpty else { return }
        let version = view.planVersion
        var deleted = 0
        // In steps of a bounded number of rows, one per reactor turn; a newer plan
        // (or anything that forbids sweeping) stops it, and its own sweep follows.
        reactor.runInSteps { [weak self] in
            guard let self, sweptVersion == version, self.view?.planVersion == version else { return true }
            guard maySweep() else {
                // Not now: the next chance sweeps again.
                sweptVersion = nil
                return true
            }
            do {
                let step = try store.engine.deleteArcs(garbage, limit: ArcSteps.rowsPerDelete)
                deleted += step.deleted
                sweptKeys += step.deleted
                if step.more { return false }
            } catch {
                sweptVersion = nil
                logger.error("migration.sweep.failed", metadata: ["storage.error": "\(error)"])
                return true
            }
            if deleted > 0 {
                logger.info("migration.swept", metadata: ["swept.keys": "\(deleted)", "swept.arcs": "\(garbage.count)",
                                                          "plan.version": "\(version)"])
            }
            return true
        }
    }
}
