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
///
/// This file follows the plan; the sender is in `Migrator+Sender.swift` (its
/// window and pacing in ``TransferWindow``), its reports in
/// `Migrator+Progress.swift`, the receiver and the sweeper in their own files.
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

    // The parts in the other files (sender, receiver, sweeper) share these.
    let address: String
    let store: LocalStore
    let clock: NodeClock
    let peers: PeerClients
    let reactor: Reactor
    let settings: Settings
    let report: (String, WireMigrationDetails, @escaping (Result<WireReportMigrationReply, RPCError>) -> Void) -> Void
    let refreshPlan: () -> Void
    let logger: Logger

    var view: RingView?
    var outgoing: [UInt64: Outgoing] = [:]
    /// Transfers this node finished and reported; not restarted while the plan still lists them.
    var finished: Set<UInt64> = []
    /// Batches received and not yet answered, for the credit.
    var receiving = 0
    /// The plan version placement reported last (heartbeat), and the one swept at.
    var placementPlanVersion: UInt64 = 0
    var sweptVersion: UInt64?
    /// Whether this node may delete data (a joined member that was not removed).
    var maySweep: () -> Bool = { true }

    /// Figures for Health.
    var sentKeys = 0
    var receivedKeys = 0
    var sweptKeys = 0
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
    }

    /// Starts the timer of the progress reports, through `every` (the owner's reactor).
    func start(every: RepeatingTimers) {
        every(settings.progressInterval) { [unowned self] in reportProgress() }
    }

    func register(on rpc: RPCServer) {
        rpc.register(StorageMethods.migrateBatch, role: .node) { [unowned self, unowned rpc] context, request in receive(context, request, rpc: rpc) }
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
            startTransfer(transfer, planVersion: plan.version)
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
}
