import Basics
import Foundation
import Logging
import RPC
import RingProtocol
import ServiceHost
import StorageEngine

/// A storage node on its reactor thread: the engine with group commit, the
/// coordinator for client requests, replica requests from peers, hinted
/// handoff, and the link to placement (join, heartbeats, the ring).
public final class StorageNodeServer {
    public let rpc: RPCServer
    public let address: String
    let placement: PlacementLink
    let store: LocalStore
    let coordinator: Coordinator
    let hints: HintReplayer
    let migrator: Migrator
    let antiEntropy: AntiEntropy
    /// Snapshots for `ringctl backup`, under `<data-dir>/backups`.
    let backups: NodeBackups
    private let peers: PeerClients
    /// The ring this node routes by, shared with the coordinator.
    private let current = CurrentRing()
    private let reactor: Reactor
    private let tombstoneGrace: Duration
    private let security: ServerSecurity?
    /// The Redis-protocol front door, with `--resp-listen`.
    private(set) var resp: RESPFrontDoor?
    /// The operations port, with `--http-listen`.
    private(set) var operations: OperationsEndpoint?

    public init(reactor: Reactor, options: StorageNodeOptions) throws {
        self.reactor = reactor
        tombstoneGrace = options.tombstoneGrace
        var logger = reactor.logger
        try FileManager.default.createDirectory(at: options.dataDirectory, withIntermediateDirectories: true)
        let engine = try StorageEngine(path: options.dataDirectory.appendingPathComponent("node.sqlite").path, sync: options.sync)
        security = try options.security.map { try ServerSecurity(reactor: reactor, settings: $0) }
        rpc = try RPCServer(reactor: reactor, endpoint: options.listen, maxMessageBytes: Int64(options.maxValueBytes + options.maxKeyBytes + (64 << 10)),
                            security: security)
        let address = options.advertise ?? Endpoint.address(of: rpc.endpoint)
        self.address = address
        logger[metadataKey: "node.address"] = "\(address)"
        store = LocalStore(engine: engine, logger: logger)
        peers = PeerClients(reactor: reactor, caller: "node \(address)", logger: logger, security: options.security?.clientSecurity)
        placement = try PlacementLink(reactor: reactor, address: address, weight: options.weight,
                                      placement: options.placement, placementEvents: options.placementEvents,
                                      heartbeatInterval: options.heartbeatInterval, security: options.security?.clientSecurity)
        let current = self.current
        coordinator = Coordinator(address: address, store: store, peers: peers, options: options,
                                  logger: logger) { current.view }
        let link = placement
        hints = HintReplayer(store: store, coordinator: coordinator, logger: logger) { link.memberStates }
        coordinator.register(on: rpc)
        var migration = Migrator.Settings()
        migration.batchKeys = options.migrationBatchKeys
        migration.rateLimit = options.migrationRateLimit
        migrator = Migrator(address: address, store: store, clock: coordinator.clock, peers: peers, reactor: reactor,
                            settings: migration,
                            logger: logger, report: { type, details, then in link.report(type, details, then: then) },
                            refreshPlan: { link.refresh() })
        migrator.register(on: rpc)
        var repair = AntiEntropy.Settings()
        repair.interval = options.antiEntropyInterval
        repair.rateLimit = options.antiEntropyRateLimit
        antiEntropy = AntiEntropy(address: address, store: store, coordinator: coordinator, peers: peers, reactor: reactor,
                                  settings: repair, logger: logger, ringView: { current.view },
                                  following: { link.joined && !link.removed && current.view?.ring != nil },
                                  report: { details in link.reportRepair(details) })
        antiEntropy.register(on: rpc)
        backups = try NodeBackups(directory: options.dataDirectory.appendingPathComponent("backups"), engine: engine,
                                  reactor: reactor, logger: logger) { link.ring?.ringEpoch ?? 0 }
        backups.register(on: rpc)
        registerStats()
        operations = try options.operations.map { settings in
            try OperationsEndpoint(reactor: reactor, settings: settings) { [unowned self] in readiness() }
        }
        operations?.onScrape { [unowned self] in recordGauges() }

        placement.onRingChange = { [unowned self] info in
            var view = RingView(info: info)
            view.states = placement.memberStates
            current.view = view
            migrator.planChanged(view)
        }
        placement.onPlanVersion = { [unowned self] version in migrator.placementReported(planVersion: version) }
        migrator.maySweep = { [unowned self] in placement.joined && !placement.removed }
        coordinator.onNewerPlan = { link.refresh() }
        placement.onMemberState = { [unowned self] member, state in
            current.view?.states = placement.memberStates
            if member == address && state == .down { antiEntropy.fellBehind() }
            if state == .up { hints.replay(to: member) }
            if state == nil {
                hints.drop(target: member)
                peers.forget(member)
            }
        }
        placement.caughtUp = { [unowned self] in antiEntropy.caughtUp }
        placement.keysHeld = { [unowned self] in (try? store.engine.stats().liveKeys) ?? 1 }
        // The turn's replica traffic, one batched ReplicaRead and ReplicaWrite per
        // peer, and this node's group commit.
        reactor.onTurnEnd { [unowned self] in
            coordinator.flushReplicaTraffic()
            store.flush()
        }

        Diagnostics.register(on: rpc, health: StorageMethods.health, echo: StorageMethods.echo,
                             service: "node", address: address) { [unowned self] in
            var details = [
                "ring_epoch": "\(placement.ring?.ringEpoch ?? 0)",
                "ring_members": "\(placement.ring?.members.count ?? 0)",
                "member_state": placement.removed ? "removed" : placement.joined ? placement.memberState.name : "joining",
                "sync": options.sync.rawValue,
                // The quorum a request that sets none gets: N, W and R from the ring (placement sets them).
                "replicas": "\(current.view?.replicas ?? 0)",
                "default_w": "\(current.view.map { $0.info.defaultWriteQuorum(replicas: $0.replicas) } ?? 0)",
                "default_r": "\(current.view.map { $0.info.defaultReadQuorum(replicas: $0.replicas) } ?? 0)",
                "commits": "\(store.commits)",
                "hints_delivered": "\(hints.delivered)",
                "plan_version": "\(placement.ring?.plan.version ?? 0)",
                "migrations_out": "\(migrator.activeTransfers)",
                "migrated_keys_sent": "\(migrator.sentKeys)",
                "migrated_keys_received": "\(migrator.receivedKeys)",
                "swept_keys": "\(migrator.sweptKeys)",
                "caught_up": "\(antiEntropy.caughtUp)",
                // This node's view of the members, as placement told it: address=state,...
                "member_states": placement.memberStates.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.name)" }
                    .joined(separator: ","),
                "members_epoch": "\(placement.membersEpoch)",
                "anti_entropy_passes": "\(antiEntropy.passes)",
                "anti_entropy_rows_pushed": "\(antiEntropy.totalPushed)",
                "anti_entropy_rows_pulled": "\(antiEntropy.totalPulled)",
                "anti_entropy_failures": "\(antiEntropy.totalFailures)",
                "anti_entropy_last_failure": antiEntropy.lastFailure,
                "anti_entropy_last_pass": antiEntropy.lastPass,
            ]
            if let (stats, hintCounts) = statistics() {
                details["keys"] = "\(stats.liveKeys)"
                details["tombstones"] = "\(stats.tombstones)"
                details["bytes"] = "\(stats.valueBytes + stats.keyBytes)"
                details["hints_pending"] = "\(hintCounts.total)"
            }
            return details
        }
        if let listen = options.respListen {
            let peers = self.peers, store = self.store, placement = self.placement
            let facts = RESPFrontDoor.NodeFacts(
                address: { address },
                ring: {
                    let view = current.view
                    return (view?.info.members.map(\.address) ?? [], view?.replicas ?? 0, placement.ring?.ringEpoch ?? 0,
                            view.map { $0.info.defaultWriteQuorum(replicas: $0.replicas) } ?? 0,
                            view.map { $0.info.defaultReadQuorum(replicas: $0.replicas) } ?? 0)
                },
                localKeys: { (try? store.engine.stats().liveKeys) ?? 0 },
                peerKeys: { peer, done in
                    guard let client = peers.client(for: peer) else { return done(nil) }
                    client.call(StorageMethods.stats, WireStatsRequest(), timeout: .seconds(1)) { result in
                        done((try? result.get()).map { Int($0.liveKeys) })
                    }
                })
            let passwords = try options.respPasswords.map { try RESPPasswords(file: $0, reactor: reactor, logger: logger) }
            resp = try RESPFrontDoor(reactor: reactor, listen: listen, coordinator: coordinator, facts: facts, passwords: passwords,
                                     maxValueBytes: options.maxValueBytes, logger: logger)
        }
        reactor.logger.info("node.listening", metadata: ["rpc.endpoint": "\(rpc.endpoint)", "node.address": "\(address)",
                                                         "placement.endpoint": "\(options.placement.joined(separator: ","))",
                                                         "node.data": "\(options.dataDirectory.path)", "node.sync": "\(options.sync.rawValue)"])
    }

    /// Starts the node's timers, its components' among them: the join and
    /// heartbeats, migration progress, anti-entropy, hint replay and the tombstone
    /// purge. Nothing runs on a timer until then; `service` calls it.
    public func start() {
        operations?.start()
        let every = reactor.repeatingTimers
        placement.start(every: every)
        migrator.start(every: every)
        antiEntropy.start(every: every)
        backups.start(every: every)
        every(.seconds(1)) { [unowned self] in hints.replay() }
        let graceMillis = UInt64(max(0, tombstoneGrace.wholeMilliseconds))
        let purgeInterval = min(Duration.seconds(60), max(.milliseconds(500), tombstoneGrace / 2))
        every(purgeInterval) { [unowned self] in purgeTombstones(graceMillis: graceMillis) }
    }

    /// Drops tombstones older than the grace period (by their HLC timestamps), a
    /// bounded number per reactor turn.
    private func purgeTombstones(graceMillis: UInt64) {
        let now = HybridLogicalClock.systemMilliseconds()
        guard now > graceMillis else { return }
        let cutoff = HybridLogicalClock.timestamp(milliseconds: now - graceMillis, counter: 0)
        var purged = 0
        reactor.runInSteps { [weak self] in
            guard let self else { return true }
            do {
                let step = try store.engine.purgeTombstones(olderThan: cutoff, limit: ArcSteps.rowsPerDelete)
                purged += step.purged
                if step.more { return false }
            } catch {
                reactor.logger.error("node.tombstones.purge.failed", metadata: ["storage.error": "\(error)"])
                return true
            }
            if purged > 0 { reactor.logger.info("node.tombstones.purged", metadata: ["tombstones.count": "\(purged)"]) }
            return true
        }
    }

    /// Engine figures: the totals the engine keeps with every write (a few rows
    /// read, whatever the data size, so they are read fresh each time).
    private func statistics() -> (StorageStats, HintCounts)? {
        guard let stats = try? store.engine.stats(), let counts = try? store.engine.hints.pendingHintCount() else { return nil }
        return (stats, counts)
    }

    /// Ready to serve: joined the ring, up, and caught up (hints delivered
    /// and the first anti-entropy pass done); otherwise why not.
    private func readiness() -> String? {
        guard placement.joined else { return "not joined to the ring yet" }
        guard !placement.removed else { return "removed from the ring" }
        guard placement.memberState == .up else { return "member state \(placement.memberState.name)" }
        guard antiEntropy.caughtUp else { return "catching up (hints and the first anti-entropy pass)" }
        return nil
    }

    private func recordGauges() {
        let metrics = NodeMetrics.shared
        if let (stats, counts) = statistics() {
            metrics.keys.record(stats.liveKeys)
            metrics.tombstones.record(stats.tombstones)
            metrics.bytes.record(stats.valueBytes)
            metrics.hintsPending.record(counts.total)
        }
        metrics.migrationsInFlight.record(migrator.activeTransfers)
    }

    private func registerStats() {
        // Engine figures are status details: for admins, and for peers' catch-up.
        rpc.register(StorageMethods.stats, role: .node) { [unowned self] _, _ in
            guard let (stats, counts) = statistics() else { return .failure(.internalError("cannot read the engine's statistics")) }
            return .reply(WireStatsReply.with {
                $0.liveKeys = UInt64(stats.liveKeys)
                $0.tombstones = UInt64(stats.tombstones)
                $0.valueBytes = UInt64(stats.valueBytes)
                $0.hintsPending = UInt64(counts.total)
                $0.hintsByTarget = counts.byTarget.mapValues { UInt64($0) }
            })
        }
    }

    /// The storage node as a lifecycle `Service`, for the executable and tests.
    public static func service(options: StorageNodeOptions, logger: Logger) -> ReactorService {
        ReactorService(name: "node", logger: logger) { reactor in
            let server = try StorageNodeServer(reactor: reactor, options: options)
            server.start()
            return server
        }
    }
}

/// The latest ring view, owned by the reactor thread and read by the coordinator.
final class CurrentRing {
    var view: RingView?
}
