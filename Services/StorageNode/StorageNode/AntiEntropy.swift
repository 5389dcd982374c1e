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

    private enum CatchUp {
        case waitingForRing, checkingHints, passQueued, caughtUp
    }

    private final class Pass {
        let reason: Reason
        var waiters: [(WireRepairReply) -> Void] = []
        var figures = Figures()
        var started: ContinuousClock.Instant?
        var work: [ArcWork] = []
        var current: ArcWork?
        var done: Set<ClosedRange<UInt32>> = []
        /// Peers that failed in this pass: not asked again until the next one.
        var unreachable: Set<String> = []
        /// The ring epoch and plan version the work list was built from.
        var builtAt: (UInt64, UInt64) = (0, 0)

        init(reason: Reason) { self.reason = reason }
    }

    private struct ArcWork {
        let range: ClosedRange<UInt32>
        var queue: [String]
        var compared: [String] = []
        var recompared: Set<String> = []
        var differed = false
    }

    /// One comparison's tally.
    private struct Tally {
        var pushed = 0
        var pulled = 0
        var differing = false
    }

    private let address: String
    private let store: LocalStore
    private let coordinator: Coordinator
    private let peers: PeerClients
    private let reactor: Reactor
    private let settings: Settings
    private let ringView: () -> RingView?
    private let following: () -> Bool
    private let report: (WireRepairDetails) -> Void
    private var logger: Logger

    private var running: Pass?
    private var queue: [Pass] = []
    /// Paces the repaired rows of every pass to `settings.rateLimit`.
    private(set) var pacer: RatePacer
    private var catchUp = CatchUp.waitingForRing
    private var hintCheckInFlight = false
    /// Peers that held hints for this node (or did not answer) at the last check; `nil`: ask every up peer.
    private var hintHolders: Set<String>?
    private var catchUpRetryAt: ContinuousClock.Instant?

    /// Whether the node has caught up since its start (heartbeats carry it).
    var caughtUp: Bool { catchUp == .caughtUp }
    /// Figures for Health.
    private(set) var passes = 0
    private(set) var totalPushed = 0
    private(set) var totalPulled = 0
    private(set) var totalFailures = 0
    private(set) var lastFailure = ""
    /// The last pass, as `reason arcs=… differing=… pushed=… pulled=… failures=… skipped_pending=…`.
    private(set) var lastPass = ""

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
        reactor.every(settings.catchUpPoll) { [unowned self] in advanceCatchUp() }
        if settings.interval > .zero {
            reactor.every(settings.interval) { [unowned self] in
                guard caughtUp, running == nil, queue.isEmpty else { return }
                enqueue(.periodic)
            }
        }
    }

    func register(on rpc: RPCServer) {
        rpc.register(StorageMethods.arcDigest) { [unowned self, unowned rpc] context, request in digest(context, request, rpc: rpc) }
        rpc.register(StorageMethods.readRanges) { [unowned self] _, request in readRanges(request) }
        rpc.register(StorageMethods.repair) { [unowned self, unowned rpc] context, _ in
            guard ringView()?.ring != nil else {
                return .failure(.unavailable("this node has no ring yet (is placement reachable, and has any node joined?)"))
            }
            enqueue(.requested) { reply in rpc.reply(to: context, .success(reply)) }
            return .parked
        }
    }

    /// Placement declared this node down: writes went elsewhere, so it catches up again.
    func fellBehind() {
        guard catchUp == .caughtUp else { return }
        catchUp = .checkingHints
        hintHolders = nil
        logger.notice("anti_entropy.catch_up.restarted", metadata: ["anti_entropy.why": "placement declared this node down"])
    }

    // MARK: Serving peers

    private func digest(_ context: RequestContext, _ request: WireArcDigestRequest, rpc: RPCServer) -> HandlerOutcome<WireArcDigestReply> {
        let leaves = Int(request.leaves)
        guard (1...65_536).contains(leaves), leaves & (leaves - 1) == 0 else {
            return .failure(.invalidArgument("leaves \(request.leaves) must be a power of two in 1...65536"))
        }
        digest(RingArc(first: request.arcFirst, last: request.arcLast), leaves: leaves) { result in
            switch result {
            case .success(let digest):
                rpc.reply(to: context, .success(WireArcDigestReply.with {
                    $0.root = Data(digest.rootBytes)
                    $0.leafHashes = digest.leafHashes
                    $0.rows = UInt64(digest.rows)
                }))
            case .failure(let error):
                rpc.fail(context, .internalError("digest failed: \(error)"))
            }
        }
        return .parked
    }

    /// The digest of `arc` at `leaves` leaves, hashed a step per reactor turn (an arc can
    /// hold any number of rows); `done` runs on the reactor thread.
    private func digest(_ arc: RingArc, leaves: Int, done: @escaping (Result<ArcDigest, StorageError>) -> Void) {
        var pass: ArcPass<DigestSoFar>
        do {
            pass = try .digest(arc, leaves: leaves)
        } catch {
            done(.failure(error))
            return
        }
        reactor.runInSteps { [weak self] in
            guard let self else { return true }
            do throws(StorageError) {
                try store.engine.advance(&pass, rows: ArcSteps.rowsPerRead)
            } catch {
                done(.failure(error))
                return true
            }
            guard let digest = pass.digest else { return false }
            done(.success(digest))
            return true
        }
    }

    private func readRanges(_ request: WireReadRangesRequest) -> HandlerOutcome<WireReadRangesReply> {
        guard !request.ranges.isEmpty, request.ranges.count <= 65_536 else {
            return .failure(.invalidArgument("\(request.ranges.count) ranges; a read takes 1...65536"))
        }
        let limit = request.limit == 0 ? settings.batchRows : min(Int(request.limit), 10_000)
        do {
            let ranges = request.ranges.map { RingArc(first: $0.first, last: $0.last) }
            let (records, more) = try store.engine.records(in: ranges, limit: limit, byteLimit: settings.batchBytes)
            return .reply(WireReadRangesReply.with {
                $0.records = records.map(\.wire)
                $0.more = more
            })
        } catch {
            return .failure(.internalError("read failed: \(error)"))
        }
    }

    // MARK: Catch-up

    private func advanceCatchUp() {
        if catchUp == .waitingForRing {
            guard following() else { return }
            catchUp = .checkingHints
        }
        guard catchUp == .checkingHints, !hintCheckInFlight else { return }
        if let retryAt = catchUpRetryAt, reactor.now < retryAt { return }
        hintCheckInFlight = true
        checkHints { [weak self] clear in
            guard let self else { return }
            hintCheckInFlight = false
            guard clear, catchUp == .checkingHints else {
                catchUpRetryAt = reactor.now + settings.hintRecheck
                return
            }
            catchUp = .passQueued
            enqueue(.catchUp)
        }
    }

    /// Whether no up peer holds hints for this node. Asks each up peer's Stats the
    /// first time, then only the peers that still held hints or did not answer
    /// (Stats counts the peer's whole table, so it is asked no more than needed).
    private func checkHints(_ done: @escaping (Bool) -> Void) {
        let me = address
        let up = Set((ringView()?.states ?? [:]).filter { $0.key != me && Self.isLive($0.value) }.map(\.key))
        let asked = hintHolders.map { $0.intersection(up) } ?? up
        guard !asked.isEmpty else {
            hintHolders = nil
            done(true)
            return
        }
        var waiting = asked.count
        var holders: Set<String> = []
        let finishOne = { [weak self] in
            waiting -= 1
            guard waiting == 0 else { return }
            self?.hintHolders = holders
            done(holders.isEmpty)
        }
        for peer in asked.sorted() {
            guard let client = peers.client(for: peer) else {
                holders.insert(peer)
                finishOne()
                continue
            }
            let timeout: Duration = .seconds(2)
            client.call(StorageMethods.stats, WireStatsRequest(), timeout: timeout) { [weak self] result in
                switch result {
                case .success(let stats):
                    if let held = stats.hintsByTarget[me], held > 0 {
                        holders.insert(peer)
                        self?.logger.debug("anti_entropy.catch_up.hints_pending", metadata: ["peer.address": "\(peer)", "hints.count": "\(held)"])
                    }
                case .failure:
                    holders.insert(peer)
                }
                finishOne()
            }
        }
    }

    // MARK: Passes

    /// Queues a pass (a requested pass joins one already queued and not started).
    private func enqueue(_ reason: Reason, then waiter: ((WireRepairReply) -> Void)? = nil) {
        if reason != .periodic, let queued = queue.first(where: { $0.reason == reason }) {
            if let waiter { queued.waiters.append(waiter) }
        } else {
            let pass = Pass(reason: reason)
            if let waiter { pass.waiters.append(waiter) }
            queue.append(pass)
        }
        runNext()
    }

    private func runNext() {
        guard running == nil, !queue.isEmpty else { return }
        let pass = queue.removeFirst()
        running = pass
        pass.started = reactor.now
        rebuild(pass)
        logger.debug("anti_entropy.pass.started", metadata: ["anti_entropy.reason": "\(pass.reason.rawValue)",
                                                            "anti_entropy.arcs": "\(pass.work.count)"])
        step(pass)
    }

    /// The arcs of the pass from the current ring, leaving out those done already.
    private func rebuild(_ pass: Pass) {
        guard let view = ringView(), let ring = view.ring, let segments = try? ring.segments(replicas: view.replicas) else {
            pass.work = []
            return
        }
        pass.builtAt = (view.info.ringEpoch, view.planVersion)
        let plan = Self.arcs(of: segments, for: address, periodic: pass.reason == .periodic, maxLength: settings.maxArcLength,
                             live: { Self.isLive(view.states[$0]) }, pending: { Self.overlapsPending($0, view) })
        pass.work = plan.arcs.filter { !pass.done.contains($0.range) }.map { ArcWork(range: $0.range, queue: $0.peers) }
        pass.figures.skippedPending = max(pass.figures.skippedPending, plan.skipped)
    }

    /// The arcs a pass of `address` compares, and with which peers: the segments it
    /// replicates, without those pending migration (counted as skipped) and those
    /// without a live peer; in periodic passes only those where it is the live replica
    /// with the lowest address. Neighbouring segments with the same replica set are
    /// joined into one arc of at most `maxLength` positions (fewer round trips; a
    /// bounded scan per digest).
    static func arcs(of segments: [HashRing.Segment], for address: String, periodic: Bool, maxLength: UInt64,
                     live: (String) -> Bool, pending: (ClosedRange<UInt32>) -> Bool)
        -> (arcs: [(range: ClosedRange<UInt32>, peers: [String])], skipped: Int) {
        var arcs: [(range: ClosedRange<UInt32>, peers: [String])] = []
        var skipped = 0
        var previousSet: Set<String>?
        for segment in segments {
            let replicas = segment.replicas.map(\.address)
            guard replicas.contains(address) else {
                previousSet = nil
                continue
            }
            if pending(segment.range) {
                skipped += 1
                previousSet = nil
                continue
            }
            let peers = replicas.filter { $0 != address && live($0) }.sorted()
            guard let lowest = peers.first, !(periodic && lowest < address) else {
                previousSet = nil
                continue
            }
            let set = Set(replicas)
            if let last = arcs.last, previousSet == set, last.peers == peers,
               UInt64(last.range.upperBound) + 1 == UInt64(segment.range.lowerBound),
               UInt64(segment.range.upperBound) - UInt64(last.range.lowerBound) + 1 <= maxLength {
                arcs[arcs.count - 1].range = last.range.lowerBound...segment.range.upperBound
            } else {
                arcs.append((segment.range, peers))
            }
            previousSet = set
        }
        return (arcs, skipped)
    }

    /// Up, or suspect (probably only slow: if it does not answer, the pass leaves it
    /// out after one failed call). Down and unknown members are left out.
    static func isLive(_ state: WireMemberState?) -> Bool {
        state == .up || state == .suspect
    }

    static func overlapsPending(_ range: ClosedRange<UInt32>, _ view: RingView) -> Bool {
        view.pending.contains { $0.range.overlaps(range) }
    }

    /// Whether `peer` may still be compared on `range` under the current ring.
    private func stillValid(_ range: ClosedRange<UInt32>, _ peer: String) -> Bool {
        guard let view = ringView(), let ring = view.ring, Self.isLive(view.states[peer]), !Self.overlapsPending(range, view),
              let list = try? ring.preferenceList(forPosition: range.lowerBound, replicas: view.replicas).map(\.address)
        else { return false }
        return list.contains(address) && list.contains(peer)
    }

    /// Runs the pass forward: the next peer of the current arc, the next arc, or the end.
    private func step(_ pass: Pass) {
        guard running === pass else { return }
        while true {
            if pass.current == nil {
                if let view = ringView(), (view.info.ringEpoch, view.planVersion) != pass.builtAt { rebuild(pass) }
                guard !pass.work.isEmpty else {
                    finish(pass)
                    return
                }
                pass.current = pass.work.removeFirst()
            }
            guard var arc = pass.current else { continue }
            guard !arc.queue.isEmpty else {
                pass.done.insert(arc.range)
                if !arc.compared.isEmpty { pass.figures.arcsCompared += 1 }
                if arc.differed { pass.figures.arcsDiffering += 1 }
                pass.current = nil
                continue
            }
            if let wait = pacer.wait(at: reactor.now) {
                reactor.after(wait) { [weak self, weak pass] in
                    guard let self, let pass else { return }
                    step(pass)
                }
                return
            }
            let peer = arc.queue.removeFirst()
            pass.current = arc
            guard !pass.unreachable.contains(peer), stillValid(arc.range, peer) else { continue }
            compare(arc.range, with: peer) { [weak self, weak pass] tally, failure in
                guard let self, let pass, running === pass, var arc = pass.current else { return }
                pass.figures.rowsPushed += tally.pushed
                pass.figures.rowsPulled += tally.pulled
                totalPushed += tally.pushed
                totalPulled += tally.pulled
                if let failure {
                    pass.figures.failures += 1
                    pass.unreachable.insert(peer)
                    totalFailures += 1
                    lastFailure = "\(peer): \(failure)"
                    logger.notice("anti_entropy.compare.failed", metadata: [
                        "peer.address": "\(peer)", "arc.first": "\(arc.range.lowerBound)", "arc.last": "\(arc.range.upperBound)",
                        "anti_entropy.error": "\(failure)",
                    ])
                } else {
                    arc.compared.append(peer)
                }
                if tally.differing { arc.differed = true }
                // Rows taken from this peer may be missing on the peers compared before it.
                if tally.pulled > 0 {
                    for earlier in arc.compared where earlier != peer && !arc.recompared.contains(earlier) && !arc.queue.contains(earlier) {
                        arc.queue.append(earlier)
                        arc.recompared.insert(earlier)
                    }
                }
                pass.current = arc
                step(pass)
            }
            return
        }
    }

    private func finish(_ pass: Pass) {
        running = nil
        passes += 1
        let elapsed = reactor.now - (pass.started ?? reactor.now)
        let micros = UInt64(max(0, elapsed.components.seconds)) * 1_000_000 + UInt64(max(0, elapsed.components.attoseconds) / 1_000_000_000_000)
        let figures = pass.figures
        let reply = WireRepairReply.with {
            $0.arcsCompared = UInt32(figures.arcsCompared)
            $0.arcsDiffering = UInt32(figures.arcsDiffering)
            $0.rowsPushed = UInt64(figures.rowsPushed)
            $0.rowsPulled = UInt64(figures.rowsPulled)
            $0.durationMicros = micros
        }
        let level: Logger.Level = pass.reason != .periodic || figures.arcsDiffering > 0 || figures.failures > 0 ? .info : .debug
        logger.log(level: level, "anti_entropy.pass.finished", metadata: [
            "anti_entropy.reason": "\(pass.reason.rawValue)", "anti_entropy.arcs_compared": "\(figures.arcsCompared)",
            "anti_entropy.arcs_differing": "\(figures.arcsDiffering)", "anti_entropy.rows_pushed": "\(figures.rowsPushed)",
            "anti_entropy.rows_pulled": "\(figures.rowsPulled)", "anti_entropy.failures": "\(figures.failures)",
            "anti_entropy.skipped_pending": "\(figures.skippedPending)", "anti_entropy.duration_ms": "\(micros / 1000)",
        ])
        lastPass = "\(pass.reason.rawValue) arcs=\(figures.arcsCompared) differing=\(figures.arcsDiffering) pushed=\(figures.rowsPushed) "
            + "pulled=\(figures.rowsPulled) failures=\(figures.failures) skipped_pending=\(figures.skippedPending)"
        for waiter in pass.waiters { waiter(reply) }
        // Published: every requested pass, and the periodic and catch-up passes
        // that repaired rows or failed; quiet ones (all is well: every minute
        // on some node, and on every start) are only logged.
        let worthReporting = pass.reason == .requested || figures.rowsPushed + figures.rowsPulled > 0 || figures.failures > 0
        if worthReporting {
            report(WireRepairDetails.with {
                $0.node = address
                $0.arcsCompared = reply.arcsCompared
                $0.arcsDiffering = reply.arcsDiffering
                $0.rowsPushed = reply.rowsPushed
                $0.rowsPulled = reply.rowsPulled
                $0.durationMicros = micros
                $0.reason = pass.reason.rawValue
            })
        }
        if pass.reason == .catchUp && catchUp == .passQueued {
            catchUpRetryAt = nil
            if figures.failures == 0 {
                catchUp = .caughtUp
                logger.info("anti_entropy.caught_up", metadata: ["anti_entropy.rows_pulled": "\(figures.rowsPulled)"])
            } else {
                catchUp = .checkingHints
                hintHolders = nil
                catchUpRetryAt = reactor.now + settings.catchUpRetry
            }
        }
        runNext()
    }

    // MARK: Comparing one arc with one peer

    /// Compares `range` with `peer` and repairs the differing leaves both ways;
    /// `done` gets what was exchanged and, if it stopped early, why.
    private func compare(_ range: ClosedRange<UInt32>, with peer: String, done: @escaping (Tally, String?) -> Void) {
        let arc = RingArc(first: range.lowerBound, last: range.upperBound)
        localDigest(arc) { [weak self] result in
            switch result {
            case .success(let local): self?.compare(arc, local, with: peer, done: done)
            case .failure(let error): done(Tally(), "local digest failed: \(error)")
            }
        }
    }

    /// Compares the local digest of `arc` with `peer`'s, then exchanges the rows of the leaves that differ.
    private func compare(_ arc: RingArc, _ local: ArcDigest, with peer: String, done: @escaping (Tally, String?) -> Void) {
        guard let client = peers.client(for: peer) else {
            done(Tally(), "no client for \(peer)")
            return
        }
        let leaves = local.leafHashes.count
        let request = WireArcDigestRequest.with {
            $0.arcFirst = arc.first
            $0.arcLast = arc.last
            $0.leaves = UInt32(leaves)
        }
        let timeout: Duration = settings.callTimeout
        client.call(StorageMethods.arcDigest, request, timeout: timeout) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let error):
                done(Tally(), "ArcDigest: \(error)")
            case .success(let reply):
                guard reply.leafHashes.count == leaves else {
                    done(Tally(), "ArcDigest answered \(reply.leafHashes.count) leaves, not \(leaves)")
                    return
                }
                if [UInt8](reply.root) == local.rootBytes {
                    done(Tally(), nil)
                    return
                }
                let differing = local.differingLeaves(from: reply.leafHashes)
                guard !differing.isEmpty else {
                    done(Tally(), nil)
                    return
                }
                logger.debug("anti_entropy.arc.differs", metadata: [
                    "peer.address": "\(peer)", "arc.first": "\(arc.first)", "arc.last": "\(arc.last)",
                    "anti_entropy.leaves": "\(leaves)", "anti_entropy.differing_leaves": "\(differing.count)",
                    "anti_entropy.rows_local": "\(local.rows)", "anti_entropy.rows_peer": "\(reply.rows)",
                ])
                let ranges = ArcDigest.ranges(ofLeaves: differing, of: arc, leaves: leaves)
                exchange(ranges, with: peer, client: client, tally: Tally(differing: true), done: done)
            }
        }
    }

    /// The local digest at about `rowsPerLeaf` rows per leaf.
    private func localDigest(_ arc: RingArc, done: @escaping (Result<ArcDigest, StorageError>) -> Void) {
        digest(arc, leaves: Self.fineLeaves) { [weak self] result in
            guard let self, case .success(let fine) = result else { return done(result) }
            let leaves = Self.leafCount(rows: fine.rows, rowsPerLeaf: settings.rowsPerLeaf)
            if leaves <= Self.fineLeaves { return done(.success(fine.folded(to: leaves))) }
            digest(arc, leaves: leaves, done: done)
        }
    }

    /// The power of two in 1...65536 that gives about `rowsPerLeaf` rows per leaf.
    static func leafCount(rows: Int, rowsPerLeaf: Int) -> Int {
        var leaves = 1
        while leaves * max(1, rowsPerLeaf) < rows && leaves < 65_536 { leaves *= 2 }
        return leaves
    }

    /// Repairs `ranges` window by window: the peer's rows, ours, then the newer of each side to the other.
    private func exchange(_ ranges: [RingArc], with peer: String, client: ReactorClient, tally: Tally,
                          done: @escaping (Tally, String?) -> Void) {
        guard !ranges.isEmpty else {
            done(tally, nil)
            return
        }
        if let wait = pacer.wait(at: reactor.now) {
            reactor.after(wait) { [weak self] in
                self?.exchange(ranges, with: peer, client: client, tally: tally, done: done)
            }
            return
        }
        let request = WireReadRangesRequest.with {
            $0.ranges = ranges.map { range in WireArcRange.with { $0.first = range.first; $0.last = range.last } }
            $0.limit = UInt32(settings.batchRows)
        }
        let timeout: Duration = settings.callTimeout
        client.call(StorageMethods.readRanges, request, timeout: timeout) { [weak self] result in
            guard let self else { return }
            let reply: WireReadRangesReply
            switch result {
            case .failure(let error):
                done(tally, "ReadRanges: \(error)")
                return
            case .success(let answer):
                reply = answer
            }
            var theirs: [VersionedRecord] = []
            theirs.reserveCapacity(reply.records.count)
            for wire in reply.records {
                guard let record = try? VersionedRecord(wire: wire) else {
                    done(tally, "ReadRanges answered a record with an empty key")
                    return
                }
                theirs.append(record)
            }
            let mine: (records: [VersionedRecord], more: Bool)
            do {
                mine = try store.engine.records(in: ranges, limit: settings.batchRows, byteLimit: settings.batchBytes)
            } catch {
                done(tally, "local read failed: \(error)")
                return
            }
            let window = Self.window(ranges, local: mine, remote: (theirs, reply.more))
            let (push, pull) = Self.reconcile(local: window.local, remote: window.remote)
            let bytes = push.byteSize + pull.byteSize
            pacer.charge(bytes, at: reactor.now)
            self.pull(pull) { [weak self] pulled, failure in
                guard let self else { return }
                var tally = tally
                tally.pulled += pulled
                if let failure {
                    done(tally, failure)
                    return
                }
                self.push(push, to: peer, from: 0) { [weak self] pushed, failure in
                    guard let self else { return }
                    tally.pushed += pushed
                    if let failure {
                        done(tally, failure)
                        return
                    }
                    exchange(window.rest, with: peer, client: client, tally: tally, done: done)
                }
            }
        }
    }

    /// Merges the peer's newer rows through the group commit; `done` gets how many were applied.
    private func pull(_ pulled: [VersionedRecord], done: @escaping (Int, String?) -> Void) {
        // Rows stamped too far ahead of our clock are dropped (and logged), not stored.
        let records = coordinator.clock.admitted(pulled, from: "an anti-entropy peer")
        guard !records.isEmpty else {
            done(0, nil)
            return
        }
        store.enqueue(records) { result in
            switch result {
            case .success(let applied): done(applied.count(where: \.wasApplied), nil)
            case .failure(let error): done(0, "local commit failed: \(error)")
            }
        }
    }

    /// Sends our newer rows to the peer in ReplicaWrite batches, one at a time;
    /// `done` gets how many the peer applied.
    private func push(_ records: [VersionedRecord], to peer: String, from start: Int, applied: Int = 0,
                      done: @escaping (Int, String?) -> Void) {
        guard start < records.count else {
            done(applied, nil)
            return
        }
        var end = start
        var bytes = 0
        while end < records.count {
            let size = records[end].byteSize + 32
            if end > start && bytes + size > settings.pushBytes { break }
            bytes += size
            end += 1
        }
        coordinator.send(Array(records[start..<end]), to: peer) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let reply):
                push(records, to: peer, from: end, applied: applied + reply.applied.count(where: { $0 }), done: done)
            case .failure(let error):
                done(applied, "ReplicaWrite: \(error)")
            }
        }
    }

    // MARK: Pure parts

    /// The part of a window both sides returned completely: each side's rows up to the
    /// earlier of their cuts (a side cut short stops after its last row's position), and
    /// the ranges left after it.
    static func window(_ ranges: [RingArc], local: (records: [VersionedRecord], more: Bool),
                       remote: (records: [VersionedRecord], more: Bool))
        -> (local: [VersionedRecord], remote: [VersionedRecord], rest: [RingArc]) {
        /// Where a position lies along the ranges: (range index, offset in the range).
        func place(_ position: UInt32) -> (Int, UInt32)? {
            guard let index = ranges.firstIndex(where: { $0.contains(position) }) else { return nil }
            return (index, position &- ranges[index].first)
        }
        var end: (Int, UInt32)?
        for side in [local, remote] where side.more {
            guard let last = side.records.last, let cut = place(last.position) else { continue }
            if let current = end {
                if cut < current { end = cut }
            } else {
                end = cut
            }
        }
        guard let end else { return (local.records, remote.records, []) }
        func within(_ record: VersionedRecord) -> Bool {
            guard let at = place(record.position) else { return false }
            return at <= end
        }
        let range = ranges[end.0]
        let endPosition = range.first &+ end.1
        var rest: [RingArc] = endPosition == range.last ? [] : [RingArc(first: endPosition &+ 1, last: range.last)]
        rest += ranges[(end.0 + 1)...]
        return (local.records.filter(within), remote.records.filter(within), rest)
    }

    /// What to send and what to take: our rows that are newer than the peer's or that it
    /// lacks, and its rows that are newer than ours or that we lack.
    static func reconcile(local: [VersionedRecord], remote: [VersionedRecord]) -> (push: [VersionedRecord], pull: [VersionedRecord]) {
        var theirs: [[UInt8]: VersionedRecord] = [:]
        for record in remote {
            theirs[record.key] = theirs[record.key].map { $0.merged(with: record) } ?? record
        }
        var ours: Set<[UInt8]> = []
        var push: [VersionedRecord] = []
        var pull: [VersionedRecord] = []
        for mine in local {
            ours.insert(mine.key)
            guard let other = theirs[mine.key] else {
                push.append(mine)
                continue
            }
            if supersedes(mine, other) {
                push.append(mine)
            } else if supersedes(other, mine) {
                pull.append(other)
            }
        }
        for record in remote where !ours.contains(record.key) {
            if theirs[record.key] == record {
                pull.append(record)
                ours.insert(record.key)
            }
        }
        return (push, pull)
    }

    /// Whether `candidate` wins a merge against `stored`.
    static func supersedes(_ candidate: VersionedRecord, _ stored: VersionedRecord) -> Bool {
        candidate != stored && stored.merged(with: candidate) == candidate
    }
}
