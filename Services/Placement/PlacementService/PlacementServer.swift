import Foundation
import Logging
import RPC
import RingProtocol
import ServiceHost

/// How the placement service runs.
public struct PlacementOptions: Sendable {
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
    public private(set) var membership: Membership
    private let store: PlacementStore
    private let reactor: Reactor
    private let origin: ContinuousClock.Instant
    private var logger: Logger

    public init(reactor: Reactor, options: PlacementOptions) throws {
        self.reactor = reactor
        logger = reactor.logger
        origin = reactor.now
        store = try PlacementStore(directory: options.dataDirectory)
        rpc = try RPCServer(reactor: reactor, endpoint: options.listen)
        let address = Endpoint.address(of: rpc.endpoint)
        events = try EventPublisher(reactor: reactor, endpoint: options.publish, source: address)
        if let saved = try store.load() {
            membership = Membership(restoring: saved, settings: options.settings, now: MembershipTime(monotonic: .zero, wallMicros: Self.wallMicros()))
            logger.info("placement.restored", metadata: ["cluster.epoch": "\(membership.epoch)", "cluster.members": "\(membership.members.count)"])
        } else {
            membership = Membership(settings: options.settings)
        }
        Diagnostics.register(on: rpc, health: PlacementMethods.health, echo: PlacementMethods.echo,
                             service: "placement", address: address) { [unowned self] in
            ["epoch": "\(membership.epoch)", "ring_epoch": "\(membership.ringEpoch)", "members": "\(membership.members.count)"]
        }
        registerMembership()
        registerQueries()
        reactor.every(options.tickInterval) { [unowned self] in
            _ = apply { (membership: inout Membership, now) throws(MembershipError) in membership.tick(now: now) }
        }
        logger.info("placement.listening", metadata: ["rpc.endpoint": "\(rpc.endpoint)", "events.endpoint": "\(events.endpoint)",
                                                      "placement.data": "\(options.dataDirectory.path)"])
    }

    /// The placement service as a lifecycle `Service`, for the executable and tests.
    public static func service(options: PlacementOptions, logger: Logger) -> ReactorService {
        ReactorService(name: "placement", logger: logger) { reactor in
            try PlacementServer(reactor: reactor, options: options)
        }
    }

    // MARK: Handlers

    private func registerMembership() {
        rpc.register(PlacementMethods.join) { [unowned self] _, request in
            let result = apply { (membership: inout Membership, now) throws(MembershipError) in
                try membership.join(address: request.address, weight: Int(request.weight), now: now)
            }
            return outcome(result) { WireJoinReply.with { $0.epoch = membership.epoch; $0.ring = membership.ringInfo } }
        }
        rpc.register(PlacementMethods.leave) { [unowned self] _, request in
            let result = apply { (membership: inout Membership, now) throws(MembershipError) in
                try membership.leave(address: request.address, now: now)
            }
            return outcome(result) { WireMembershipChangeReply.with { $0.epoch = membership.epoch } }
        }
        rpc.register(PlacementMethods.remove) { [unowned self] _, request in
            let result = apply { (membership: inout Membership, now) throws(MembershipError) in
                try membership.remove(address: request.address, now: now)
            }
            return outcome(result) { WireMembershipChangeReply.with { $0.epoch = membership.epoch } }
        }
        rpc.register(PlacementMethods.handoffComplete) { [unowned self] _, request in
            let result = apply { (membership: inout Membership, now) throws(MembershipError) in
                try membership.handoffComplete(address: request.address, now: now)
            }
            return outcome(result) { WireMembershipChangeReply.with { $0.epoch = membership.epoch } }
        }
        rpc.register(PlacementMethods.heartbeat) { [unowned self] _, request in
            let result = apply { (membership: inout Membership, now) throws(MembershipError) in
                try membership.heartbeat(address: request.address, now: now)
            }
            return outcome(result) {
                WireHeartbeatReply.with {
                    $0.epoch = membership.epoch
                    $0.ringEpoch = membership.ringEpoch
                    $0.state = membership.member(request.address)?.state.wire ?? .unknown
                }
            }
        }
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
            .reply(WireSnapshotReply.with {
                $0.epoch = membership.epoch
                $0.members = membership.members.map(\.wire)
                $0.ring = membership.ringInfo
                $0.incarnation = events.incarnation
                $0.lastSeq = events.lastSequences
            })
        }
        rpc.register(PlacementMethods.reportMigration) { [unowned self] _, request in
            let types = ["migration_started", "migration_progress", "migration_completed", "migration_failed"]
            guard types.contains(request.type) else {
                return .failure(.invalidArgument("migration event type '\(request.type)' is not one of \(types.joined(separator: ", "))"))
            }
            events.publish(topic: "migration", type: request.type, epoch: request.epoch, details: .migration(request.details))
            return .reply(WireReportMigrationReply())
        }
    }

    // MARK: Applying changes

    /// Runs `change` on a copy of the membership; persists the copy if the epoch
    /// moved, then adopts it and publishes its events.
    private func apply(_ change: (inout Membership, MembershipTime) throws(MembershipError) -> [MembershipEvent]) -> Result<Void, RPCError> {
        var next = membership
        let events: [MembershipEvent]
        do {
            events = try change(&next, now)
        } catch {
            return .failure(error.rpcError)
        }
        if next.epoch != membership.epoch {
            do {
                try store.save(next.persisted)
            } catch {
                logger.error("placement.persist.failed", metadata: ["placement.error": "\(error)"])
                return .failure(.internalError("cannot persist membership: \(error)"))
            }
        }
        membership = next
        for event in events { publish(event) }
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
            let ring = membership.ringInfo
            events.publish(topic: event.topic, type: event.kind.rawValue, epoch: event.epoch, details: .ring(WireRingDetails.with {
                $0.members = ring.members.map(\.address)
                $0.weights = ring.members.map(\.weight)
                $0.density = ring.density
                $0.replicas = ring.replicas
            }))
            logger.info("ring.changed", metadata: ["ring.epoch": "\(event.epoch)", "ring.members": "\(ring.members.count)"])
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

    private var now: MembershipTime {
        MembershipTime(monotonic: reactor.now - origin, wallMicros: Self.wallMicros())
    }

    private static func wallMicros() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000_000) }
}
