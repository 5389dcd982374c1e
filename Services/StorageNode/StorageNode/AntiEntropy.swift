import Foundation
import Logging
import RPC
import Ring
import RingProtocol
import StorageEngine

/// Anti-entropy on a storage node: replicas of an arc compare Merkle leaves of
/// (key, version) and exchange only the rows of the leaves that differ, merging
/// by version both ways. Also the node's catch-up after a start.
///
/// - A pass walks the ring's segments (arcs with a constant preference list)
///   that this node replicates, one arc at a time and one peer at a time. For
///   each live peer it computes the arc's leaves locally, asks the peer for
///   the same leaves (`ArcDigest`), and for the differing leaves reads the
///   peer's rows (`ReadRanges`, in windows cut between positions), merges the
///   newer ones locally (group commit) and pushes the rows the peer lacks or
///   holds older (`ReplicaWrite`). When rows were pulled from a peer, peers of
///   the arc compared before it are compared once more, so one pass leaves
///   every live replica of the arc identical.
/// - Leaves: about `rowsPerLeaf` local rows per leaf, a power of two in
///   1...65536. The local digest is computed once at 4096 leaves and folded
///   (leaf hashes are sums, so halving the resolution adds neighbours).
/// - Neighbouring segments with the same replica set are joined into one arc
///   (at most 1/64 of the ring), so a pass makes few round trips.
/// - Arcs that overlap a pending arc of the migration plan are skipped in
///   every kind of pass: migration is filling or emptying them, and comparing
///   would only duplicate its transfer.
/// - Periodic passes (every `interval`): only the live replica of an arc with
///   the lowest address compares it, with all others, so the work is not
///   doubled. A requested pass (`Repair`, `ringctl repair`) and the catch-up
///   pass compare every arc this node replicates with every live peer (up or
///   suspect; down and unknown members are left out, and a peer that fails a
///   call is left out for the rest of the pass).
/// - The rows repaired (pushed plus pulled, keys and values) are paced to
///   `rateLimit` bytes per second; one pass runs at a time.
/// - Passes are reported to placement (`ReportRepair`), which publishes them
///   on the `migration` topic as `anti_entropy`: every requested pass, and the
///   periodic and catch-up passes that repaired rows or had failures.
/// - Catch-up: after a start, the node is caught up once it follows the ring,
///   no up peer holds hints for it any more (their `Stats`), and a catch-up
///   pass finished without failures. It says so in its heartbeats. If
///   placement declares it down meanwhile, it catches up again.
///
/// This file holds the settings, the state and the timers; the other parts are
/// `AntiEntropy+PeerRequests` (serving peers), `AntiEntropy+CatchUp` (driving
/// ``CatchUp``), `AntiEntropy+Passes` (running passes: ``RepairScheduler``
/// picks the next, ``RepairPass`` walks it), `AntiEntropy+ArcExchange`
/// (comparing one arc with one peer) and `AntiEntropy+Reconciliation` (the
/// pure window and merge rules).
final class AntiEntropy {
    enum Reason: String {
        case periodic
        case requested
        case catchUp = "catch-up"
    }

    struct Settings {
        /// Between periodic passes; zero disables them.
        var interval: Duration = .seconds(60)
        /// Bytes per second of repaired rows; 0: unlimited.
        var rateLimit = 4_000_000
        /// Rows and bytes per ReadRanges window and per local read.
        var batchRows = 1000
        var batchBytes = 1 << 20
        /// Bytes of records per ReplicaWrite push.
        var pushBytes = 512 << 10
        /// Local rows per Merkle leaf the node aims at.
        var rowsPerLeaf = 32
        /// Neighbouring segments with the same replicas are compared as one arc of at most this many positions.
        var maxArcLength: UInt64 = 1 << 26
        var callTimeout: Duration = .seconds(5)
        /// How often catch-up checks its conditions, and how often it asks again
        /// the peers that still held hints for this node.
        var catchUpPoll: Duration = .milliseconds(200)
        var hintRecheck: Duration = .seconds(1)
        /// Pause before a catch-up pass that had failures is run again.
        var catchUpRetry: Duration = .seconds(2)
    }

    /// What a pass did.
    struct Figures: Equatable {
        var arcsCompared = 0
        var arcsDiffering = 0
        var rowsPushed = 0
        var rowsPulled = 0
        /// Peer comparisons that failed (unreachable, errors).
        var failures = 0
        /// Arcs left out because they are pending migration.
        var skippedPending = 0
    }

    /// One comparison's tally.
    struct Tally: Equatable {
        var pushed = 0
        var pulled = 0
        var differing = false
    }

    // The parts in the other files share these.
    let address: String
    let store: LocalStore
    let coordinator: Coordinator
    let peers: PeerClients
    let reactor: Reactor
    let settings: Settings
    let ringView: () -> RingView?
    let following: () -> Bool
    let report: (WireRepairDetails) -> Void
    let logger: Logger

    /// The pass running, if any (its callbacks check they are still the one).
    var running: Pass?
    var scheduler = RepairScheduler<(WireRepairReply) -> Void>()
    /// Paces the repaired rows of every pass to `settings.rateLimit`.
    var pacer: RatePacer
    var catchUp: CatchUp

    /// Whether the node has caught up since its start (heartbeats carry it).
    var caughtUp: Bool { catchUp.isCaughtUp }
    /// Figures for Health.
    var passes = 0
    var totalPushed = 0
    var totalPulled = 0
    var totalFailures = 0
    var lastFailure = ""
    /// The last pass, as `reason arcs=… differing=… pushed=… pulled=… failures=… skipped_pending=…`.
    var lastPass = ""

    /// Leaves of the local digest that is folded down to the leaves used.
    static let fineLeaves = 4096

    init(address: String, store: LocalStore, coordinator: Coordinator, peers: PeerClients, reactor: Reactor,
         settings: Settings, logger: Logger, ringView: @escaping () -> RingView?, following: @escaping () -> Bool,
         report: @escaping (WireRepairDetails) -> Void) {
        self.address = address
        self.store = store
        self.coordinator = coordinator
        self.peers = peers
        self.reactor = reactor
        self.settings = settings
        self.logger = logger
        self.ringView = ringView
        self.following = following
        self.report = report
        pacer = RatePacer(bytesPerSecond: settings.rateLimit, now: reactor.now)
        catchUp = CatchUp(hintRecheck: settings.hintRecheck, passRetry: settings.catchUpRetry)
    }

    /// Starts the timers, through `every` (the owner's reactor): catch-up checks
    /// every `catchUpPoll`, and a periodic pass every `interval` (none when zero).
    func start(every: RepeatingTimers) {
        every(settings.catchUpPoll) { [unowned self] in advanceCatchUp() }
        if settings.interval > .zero {
            every(settings.interval) { [unowned self] in
                if scheduler.queuePeriodic(caughtUp: caughtUp) { runNext() }
            }
        }
    }

    func register(on rpc: RPCServer) {
        rpc.register(StorageMethods.arcDigest, role: .node) { [unowned self, unowned rpc] context, request in digest(context, request, rpc: rpc) }
        rpc.register(StorageMethods.readRanges, role: .node) { [unowned self] _, request in readRanges(request) }
        rpc.register(StorageMethods.repair, role: .admin) { [unowned self, unowned rpc] context, _ in
            guard ringView()?.ring != nil else {
                return .failure(.unavailable("this node has no ring yet (is placement reachable, and has any node joined?)"))
            }
            enqueue(.requested) { reply in rpc.reply(to: context, .success(reply)) }
            return .parked
        }
    }

    /// Placement declared this node down: writes went elsewhere, so it catches up again.
    func fellBehind() {
        guard catchUp.fellBehind() else { return }
        logger.notice("anti_entropy.catch_up.restarted", metadata: ["anti_entropy.why": "placement declared this node down"])
    }
}
