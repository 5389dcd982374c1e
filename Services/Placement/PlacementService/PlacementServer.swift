import Basics
import ControlPlane
import Foundation
import Logging
import RPC
import RingProtocol
import ServiceHost

/// How the placement service runs.
public struct PlacementOptions: Sendable {
    /// CURVE on every socket (nil: off).
    public var security: SecuritySettings?
    /// The ROUTER endpoint for requests.
    public var listen: String
    /// The PUB endpoint for membership, ring and migration events.
    public var publish: String
    /// Where membership and the epoch are persisted.
    public var dataDirectory: URL
    /// Cluster settings and failure-detection timeouts.
    public var settings: MembershipSettings
    /// How often failure detection runs.
    public var tickInterval: Duration
    /// The operations port (probes, metrics, the status page); nil: none.
    public var operations: OperationsSettings?
    /// Where the state lives: embedded (a file under `dataDirectory`) or etcd (replicas elect a leader).
    public var replication: ReplicationSettings = .embedded

    public init(listen: String = "tcp://127.0.0.1:7400", publish: String = "tcp://127.0.0.1:7401",
                dataDirectory: URL = URL(fileURLWithPath: "placement-data"),
                settings: MembershipSettings = MembershipSettings(), tickInterval: Duration = .milliseconds(100)) {
        self.listen = listen
        self.publish = publish
        self.dataDirectory = dataDirectory
        self.settings = settings
        self.tickInterval = tickInterval
    }
}

/// The placement service on its reactor thread: the `Membership` state machine
/// plus the I/O it asks for. A change is persisted before it is published or
/// acknowledged; a change that cannot be persisted is refused (INTERNAL) and
/// leaves the state as it was.
public final class PlacementServer {
    public let rpc: RPCServer
    public let events: EventPublisher
    public internal(set) var membership: Membership
    /// Where changes are saved; nil while a follower replica (nothing to save).
    var store: (any PlacementStateStore)?
    /// Leader or follower: with the embedded store, leader for good.
    public let control: ReplicaControl
    let settings: MembershipSettings
    private let reactor: Reactor
    private let origin: ContinuousClock.Instant
    private let tickInterval: Duration
    private let security: ServerSecurity?
    var logger: Logger
    /// The operations port, with the status page; nil without one.
    public private(set) var operations: PlacementOperations?

    public init(reactor: Reactor, options: PlacementOptions) throws {
        self.reactor = reactor
        logger = reactor.logger
        origin = reactor.now
        tickInterval = options.tickInterval
        settings = options.settings
        security = try options.security.map { try ServerSecurity(reactor: reactor, settings: $0) }
        rpc = try RPCServer(reactor: reactor, endpoint: options.listen, security: security)
        let address = Endpoint.address(of: rpc.endpoint)
        events = try EventPublisher(reactor: reactor, endpoint: options.publish, source: address, security: security)
        control = try ReplicaControl(reactor: reactor, rpc: rpc, service: "placement", settings: options.replication,
                                     exempt: [PlacementMethods.health.path, PlacementMethods.echo.path])
        membership = Membership(settings: options.settings)
        if !control.isReplicated {
            let store = try PlacementStore(directory: options.dataDirectory)
            if let saved = try store.load() {
                membership = Membership(restoring: saved, settings: options.settings, now: ServiceTime(monotonic: .zero, wallMicros: WallClock.micros))
                logger.info("placement.restored", metadata: ["cluster.epoch": "\(membership.epoch)", "cluster.members": "\(membership.members.count)"])
            }
            self.store = store
        }
        Diagnostics.register(on: rpc, health: PlacementMethods.health, echo: PlacementMethods.echo,
                             service: "placement", address: address) { [unowned self] in
            ["epoch": "\(membership.epoch)", "ring_epoch": "\(membership.ringEpoch)", "members": "\(membership.members.count)"]
                .merging(control.details) { _, role in role }
        }
        control.onElected = { [unowned self] term in takeOver(term) }
        control.onDeposed = { [unowned self] reason in stepDown(reason) }
        registerMembership()
        registerQueries()
        operations = try options.operations.map { settings in
            try PlacementOperations(reactor: reactor, settings: settings, events: events, following: { [unowned self] in
                if case .follower(let leader) = control.role { return leader }
                return nil
            }, snapshot: { [unowned self] in snapshot() })
        }
        logger.info("placement.listening", metadata: ["rpc.endpoint": "\(rpc.endpoint)", "events.endpoint": "\(events.endpoint)",
                                                      "placement.data": "\(options.dataDirectory.path)"])
    }

    /// Starts the failure detector's tick (suspect, down, automatic removal).
    /// Nothing runs on a timer until then; `service` calls it.
    public func start() {
        operations?.start()
        control.start()
        reactor.every(tickInterval) { [unowned self] in
            guard control.isLeader else { return }
            _ = apply { (membership: inout Membership, now) throws(MembershipError) in membership.tick(now: now) }
        }
    }

    /// The placement service as a lifecycle `Service`, for the executable and tests.
    public static func service(options: PlacementOptions, logger: Logger) -> ReactorService {
        ReactorService(name: "placement", logger: logger) { reactor in
            let server = try PlacementServer(reactor: reactor, options: options)
            server.start()
            return server
        }
    }

    // MARK: Handlers

    private func registerMembership() {
        registerChange(PlacementMethods.join, role: .node) { (membership: inout Membership, request, now) throws(MembershipError) in
            try membership.join(address: request.address, weight: Int(request.weight), now: now)
        } reply: { membership, _ in
            WireJoinReply.with { $0.epoch = membership.epoch; $0.ring = membership.ringInfo }
        }
        registerChange(PlacementMethods.leave, role: .admin) { (membership: inout Membership, request, now) throws(MembershipError) in
            try membership.leave(address: request.address, now: now)
        } reply: { membership, _ in Self.epochReply(membership) }
        registerChange(PlacementMethods.remove, role: .admin) { (membership: inout Membership, request, now) throws(MembershipError) in
            try membership.remove(address: request.address, force: request.force, now: now)
        } reply: { membership, _ in Self.epochReply(membership) }
        registerChange(PlacementMethods.handoffComplete, role: .node) { (membership: inout Membership, request, now) throws(MembershipError) in
            try membership.handoffComplete(address: request.address, now: now)
        } reply: { membership, _ in Self.epochReply(membership) }
        registerChange(PlacementMethods.heartbeat, role: .node) { (membership: inout Membership, request, now) throws(MembershipError) in
            try membership.heartbeat(address: request.address, caughtUp: request.caughtUp, now: now)
        } reply: { membership, request in
            WireHeartbeatReply.with {
                $0.epoch = membership.epoch
                $0.ringEpoch = membership.ringEpoch
                $0.planVersion = membership.plan.version
                $0.state = membership.member(request.address)?.state.wire ?? .unknown
            }
        }
    }

    /// Registers a request that changes the membership: `change` runs
    /// through `apply`, and `reply` answers from the membership adopted.
    private func registerChange<Request, Response>(
        _ method: RPCMethod<Request, Response>, role: Allowlist.Role,
        _ change: @escaping (inout Membership, Request, ServiceTime) throws(MembershipError) -> [MembershipEvent],
        reply: @escaping (Membership, Request) -> Response
    ) {
        rpc.register(method, role: role) { [unowned self] _, request in
            let result = apply { (membership: inout Membership, now) throws(MembershipError) in try change(&membership, request, now) }
            return outcome(result) { reply(membership, request) }
        }
    }

    private static func epochReply(_ membership: Membership) -> WireMembershipChangeReply {
        WireMembershipChangeReply.with { $0.epoch = membership.epoch }
    }

    private func registerQueries() {
        rpc.register(PlacementMethods.getMembers) { [unowned self] _, _ in
            .reply(WireGetMembersReply.with {
                $0.epoch = membership.epoch
                $0.members = membership.members.map(\.wire)
            })
        }
        rpc.register(PlacementMethods.getRing) { [unowned self] _, _ in
            .reply(WireGetRingReply.with {
                $0.epoch = membership.epoch
                $0.ring = membership.ringInfo
            })
        }
        rpc.register(PlacementMethods.snapshot) { [unowned self] _, _ in
            .reply(snapshot())
        }
        rpc.register(PlacementMethods.reportMigration, role: .node) { [unowned self] _, request in reportMigration(request) }
        rpc.register(PlacementMethods.reportRepair, role: .node) { [unowned self] _, request in reportRepair(request) }
        // For `ringctl backup`: what placement persists, and the ring with N, W, R and the density.
        rpc.register(PlacementMethods.exportState, role: .admin) { [unowned self] _, _ in
            .reply(WirePlacementExportReply.with {
                $0.state = membership.persisted
                $0.ring = membership.ringInfo
            })
        }
    }

    /// A node reports an anti-entropy pass: published on the `migration` topic as `anti_entropy`.
    private func reportRepair(_ request: WireReportRepairRequest) -> HandlerOutcome<WireReportRepairReply> {
        guard request.hasDetails, !request.details.node.isEmpty else {
            return .failure(.invalidArgument("a repair report needs details with the node's address"))
        }
        let details = request.details
        events.publish(topic: "migration", type: "anti_entropy", epoch: membership.ringEpoch, details: .repair(details))
        logger.info("anti_entropy.reported", metadata: [
            "member.address": "\(details.node)", "anti_entropy.reason": "\(details.reason)",
            "anti_entropy.arcs_compared": "\(details.arcsCompared)", "anti_entropy.arcs_differing": "\(details.arcsDiffering)",
            "anti_entropy.rows_pushed": "\(details.rowsPushed)", "anti_entropy.rows_pulled": "\(details.rowsPulled)",
        ])
        return .reply(WireReportRepairReply())
    }

    /// A sender reports on a transfer of the plan; placement records it,
    /// relays it on the `migration` topic and, when a transfer completes,
    /// settles its arcs and publishes the plan (`ring_settled`). A report
    /// without a transfer id is relayed as it is.
    private func reportMigration(_ request: WireReportMigrationRequest) -> HandlerOutcome<WireReportMigrationReply> {
        let types = ["migration_started", "migration_progress", "migration_completed", "migration_failed"]
        guard types.contains(request.type) else {
            return .failure(.invalidArgument("migration event type '\(request.type)' is not one of \(types.joined(separator: ", "))"))
        }
        let id = request.details.transferID
        var current = true
        if id != 0 {
            let details = request.details
            let wallMicros = WallClock.micros
            if request.type == "migration_completed" {
                let pendingBefore = membership.plan.pending.count
                _ = membership.recordProgress(id) { transfer in
                    transfer.keys = details.keys
                    transfer.bytes = details.bytes
                    transfer.updatedUnixMicros = wallMicros
                }
                let result = apply { (membership: inout Membership, _) throws(MembershipError) in
                    current = membership.completeTransfer(id)
                    return []
                }
                if case .failure(let error) = result { return .failure(error) }
                if current {
                    events.publish(topic: "migration", type: request.type, epoch: membership.plan.ringEpoch, details: .migration(details))
                    let settled = pendingBefore - membership.plan.pending.count
                    logger.info("migration.transfer.completed", metadata: [
                        "transfer.id": "\(id)", "transfer.from": "\(details.from)", "transfer.to": "\(details.to)",
                        "transfer.keys": "\(details.keys)", "plan.pending": "\(membership.plan.pending.count)", "plan.settled": "\(settled)",
                    ])
                    publishPlan(type: "ring_settled")
                }
            } else {
                current = membership.recordProgress(id) { transfer in
                    if request.type == "migration_started" {
                        transfer.expectedKeys = details.expectedKeys
                        transfer.expectedBytes = details.expectedBytes
                        if transfer.startedUnixMicros == 0 { transfer.startedUnixMicros = wallMicros }
                    }
                    transfer.keys = details.keys
                    transfer.bytes = details.bytes
                    transfer.rate = details.rate
                    transfer.lastError = request.type == "migration_failed" ? details.reason : ""
                    transfer.updatedUnixMicros = wallMicros
                }
                if current {
                    events.publish(topic: "migration", type: request.type, epoch: membership.plan.ringEpoch, details: .migration(details))
                }
            }
        } else {
            events.publish(topic: "migration", type: request.type, epoch: request.epoch, details: .migration(request.details))
        }
        return .reply(WireReportMigrationReply.with {
            $0.planVersion = membership.plan.version
            $0.transferCurrent = current
        })
    }

    // MARK: Applying changes

    /// Runs `change` on a copy of the membership; persists the copy if the epoch
    /// moved, then adopts it and publishes its events.
    private func apply(_ change: (inout Membership, ServiceTime) throws(MembershipError) -> [MembershipEvent]) -> Result<Void, RPCError> {
        var next = membership
        let events: [MembershipEvent]
        do {
            events = try change(&next, now)
        } catch {
            return .failure(error.rpcError)
        }
        if next.epoch != membership.epoch || next.plan.version != membership.plan.version {
            guard let store else { return .failure(control.notLeaderError) }
            do {
                try store.save(next.persisted)
            } catch let error as ReplicatedWriteError {
                // This replica's state may no longer be etcd's: it gives up
                // leading (and reloads if it wins again).
                logger.error("placement.persist.failed", metadata: ["placement.error": "\(error)"])
                control.resign("a write to etcd failed: \(error)")
                if error.kind == .outcomeUnknown {
                    return .failure(.unavailable("the change reached etcd but its outcome is unknown (it may have been applied): \(error)"))
                }
                return .failure(control.notLeaderError)
            } catch {
                logger.error("placement.persist.failed", metadata: ["placement.error": "\(error)"])
                return .failure(.internalError("cannot persist membership: \(error)"))
            }
        }
        let planChanged = next.plan.version != membership.plan.version
        membership = next
        for event in events { publish(event) }
        if planChanged {
            for arc in membership.lostArcs { publishLost(arc) }
            if !events.contains(where: { $0.kind == .ringChanged }) && !events.isEmpty {
                publishPlan(type: "ring_replanned")
            }
        }
        return .success(())
    }

    private func outcome<Response>(_ result: Result<Void, RPCError>, _ reply: () -> Response) -> HandlerOutcome<Response> {
        switch result {
        case .success: .reply(reply())
        case .failure(let error): .failure(error)
        }
    }

    private func publish(_ event: MembershipEvent) {
        if event.kind == .ringChanged {
            publishPlan(type: event.kind.rawValue, epoch: event.epoch)
            logger.info("ring.changed", metadata: ["ring.epoch": "\(event.epoch)", "ring.members": "\(membership.ringMembers.count)",
                                                   "plan.pending": "\(membership.plan.pending.count)",
                                                   "plan.transfers": "\(membership.plan.transfers.count)"])
        } else {
            events.publish(topic: event.topic, type: event.kind.rawValue, epoch: event.epoch, details: .member(WireMemberDetails.with {
                $0.address = event.address
                $0.state = event.state
                $0.previousState = event.previousState
                $0.weight = UInt32(event.weight)
            }))
            logger.info("membership.changed", metadata: ["member.address": "\(event.address)", "member.event": "\(event.kind.rawValue)",
                                                         "cluster.epoch": "\(event.epoch)"])
        }
    }

    /// Publishes the ring with its migration plan on the `ring` topic.
    private func publishPlan(type: String, epoch: UInt64? = nil) {
        let ring = membership.ringInfo
        events.publish(topic: "ring", type: type, epoch: epoch ?? membership.ringEpoch, details: .ring(WireRingDetails.with {
            $0.members = ring.members.map(\.address)
            $0.weights = ring.members.map(\.weight)
            $0.density = ring.density
            $0.replicas = ring.replicas
            $0.writeQuorum = ring.writeQuorum
            $0.readQuorum = ring.readQuorum
            $0.plan = ring.plan
        }))
    }

    /// An arc none of whose replicas is live any more: its data cannot be moved.
    private func publishLost(_ arc: WirePendingArc) {
        logger.error("migration.arc.lost", metadata: ["arc.first": "\(arc.arc.first)", "arc.last": "\(arc.arc.last)",
                                                      "arc.old": "\(arc.oldReplicas)"])
        events.publish(topic: "migration", type: "migration_failed", epoch: membership.ringEpoch, details: .migration(WireMigrationDetails.with {
            $0.arcStart = arc.arc.first
            $0.arcEnd = arc.arc.last
            $0.from = arc.oldReplicas.joined(separator: ",")
            $0.to = arc.newReplicas.joined(separator: ",")
            $0.reason = "no live replica holds this arc"
            $0.willRetry = false
        }))
    }

    /// Members, the ring with its plan, and the event stream's position: what
    /// a subscriber starts from (the clone pattern), and what the status page shows.
    func snapshot() -> WireSnapshotReply {
        WireSnapshotReply.with {
            $0.epoch = membership.epoch
            $0.members = membership.members.map(\.wire)
            $0.ring = membership.ringInfo
            $0.incarnation = events.incarnation
            $0.lastSeq = events.lastSequences
        }
    }

    var now: ServiceTime {
        ServiceTime(monotonic: reactor.now - origin, wallMicros: WallClock.micros)
    }

}

extension MembershipError {
    /// The gRPC-style status for this refusal.
    public var rpcError: RPCError {
        switch kind {
        case .alreadyMember: RPCError(.alreadyExists, message)
        case .notMember: RPCError(.notFound, message)
        case .malformedAddress, .invalidWeight: RPCError(.invalidArgument, message)
        case .notLeaving, .alreadyLeaving, .memberUp: RPCError(.failedPrecondition, message)
        }
    }
}
