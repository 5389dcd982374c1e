import Foundation
import Logging
import RPC
import RingProtocol

/// A storage node's link to the placement service, on the node's reactor:
/// joins on start, heartbeats, and follows the ring by the clone pattern
/// (subscribe to `ring` events first, then fetch the ring, then apply only
/// newer epochs; a heartbeat reply that shows a newer ring epoch also
/// triggers a fetch, covering events lost while placement was away).
/// Member states follow the same way: `membership` events, and a fetch of
/// every member whenever a heartbeat reply (or an event) shows a cluster
/// epoch newer than the states this node has, so a missed state event is
/// corrected within a heartbeat.
///
/// Placement may run as several replicas: the link knows every one's request
/// endpoint (its client follows the leader: a follower's refusal names it)
/// and listens on every one's event endpoint (only the leader publishes).
/// Events are ordered by epoch, not by their publisher's sequence numbers,
/// so a new leader (a new incarnation) needs no reset; the link fetches the
/// ring and the members when it first hears a new incarnation, for whatever
/// was published while it was not listening to that one yet.
final class PlacementLink {
    /// The ring this node follows, with its epoch; `nil` until the first fetch.
    private(set) var ring: WireRingInfo?
    /// Our state as placement last reported it.
    private(set) var memberState: WireMemberState = .unknown
    private(set) var joined = false
    private(set) var removed = false

    private let address: String
    private let weight: Int
    private let heartbeatInterval: Duration
    private let client: ReactorClient
    private var listener: EventListener?
    /// The incarnation of the publisher of the last event heard.
    private var incarnation: UInt64?
    private var logger: Logger
    private var callInFlight = false
    /// How long a join or heartbeat call may take. A dropped connection
    /// (placement restarting) fails it at once, so the next tick sends a fresh one.
    private let callTimeout: Duration = .seconds(2)
    private var ringFetchInFlight = false
    private var handoffReported = false
    private var handoffWaitLogged = false
    /// What placement last said about each member's liveness.
    private(set) var memberStates: [String: WireMemberState] = [:]
    /// The cluster epoch `memberStates` reflects (a members fetch or the last state event).
    private(set) var membersEpoch: UInt64 = 0
    private var membersFetchInFlight = false
    /// Called on the reactor thread after a new ring epoch was adopted.
    var onRingChange: ((WireRingInfo) -> Void)?
    /// Called when a member's state changes (`nil`: removed).
    var onMemberState: ((String, WireMemberState?) -> Void)?
    /// Asked before reporting a leave's handoff complete: how many keys this
    /// node still holds (it reports only when none are left to hand off).
    var keysHeld: (() -> Int)?
    /// Called with the migration plan version of every heartbeat reply.
    var onPlanVersion: ((UInt64) -> Void)?
    /// Whether the node has caught up since its start, sent in every heartbeat.
    var caughtUp: () -> Bool = { false }

    init(reactor: Reactor, address: String, weight: Int, placement: [String], placementEvents: [String], heartbeatInterval: Duration,
         security: ClientSecurity? = nil) throws {
        self.address = address
        self.weight = weight
        self.heartbeatInterval = heartbeatInterval
        logger = reactor.logger
        logger[metadataKey: "node.address"] = "\(address)"
        client = try ReactorClient(reactor: reactor, endpoints: placement, caller: "node \(address)", logger: logger, security: security)
        listener = try EventListener(reactor: reactor, endpoints: placementEvents, topics: ["ring", "membership"],
                                     security: security) { [unowned self] received in
            handle(received)
        }
    }

    /// Joins (or, once joined, heartbeats) now and then every `heartbeatInterval`,
    /// through `every` (the owner's reactor).
    func start(every: RepeatingTimers) {
        every(heartbeatInterval) { [unowned self] in tick() }
        tick()
    }

    deinit { client.close(notify: false) }

    // MARK: Join and heartbeat

    private func tick() {
        guard !callInFlight, !removed else { return }
        callInFlight = true
        if !joined {
            let request = WireJoinRequest.with { $0.address = address; $0.weight = UInt32(weight) }
            client.call(PlacementMethods.join, request, timeout: callTimeout) { [weak self] in self?.joinFinished($0) }
        } else {
            let request = WireHeartbeatRequest.with {
                $0.address = address
                $0.ringEpoch = ring?.ringEpoch ?? 0
                $0.caughtUp = caughtUp()
            }
            client.call(PlacementMethods.heartbeat, request, timeout: callTimeout) { [weak self] in self?.heartbeatFinished($0) }
        }
    }

    private func joinFinished(_ result: Result<WireJoinReply, RPCError>) {
        callInFlight = false
        switch result {
        case .success(let reply):
            joined = true
            memberState = .up
            logger.info("node.joined", metadata: ["cluster.epoch": "\(reply.epoch)"])
            adopt(reply.ring)
            fetchMembers()
        case .failure(let error) where error.code == .alreadyExists:
            // A restart: we are a member already; heartbeats bring us back up.
            joined = true
            logger.info("node.rejoined", metadata: ["rpc.message": "\(error.message)"])
            fetchRing()
            fetchMembers()
        case .failure(let error):
            logger.warning("node.join.failed", metadata: ["rpc.error": "\(error)"])
        }
    }

    private func heartbeatFinished(_ result: Result<WireHeartbeatReply, RPCError>) {
        callInFlight = false
        switch result {
        case .success(let reply):
            memberState = reply.state
            if reply.ringEpoch > (ring?.ringEpoch ?? 0) || reply.planVersion > (ring?.plan.version ?? 0) { fetchRing() }
            if reply.epoch > membersEpoch { fetchMembers() }
            onPlanVersion?(reply.planVersion)
            if reply.state == .leaving { reportHandoff() }
        case .failure(let error) where error.code == .notFound:
            removed = true
            logger.warning("node.removed", metadata: ["rpc.message": "\(error.message)",
                                                     "node.hint": "restart the node or run ringctl join to make it a member again"])
        case .failure(let error):
            logger.notice("node.heartbeat.failed", metadata: ["rpc.error": "\(error)"])
        }
    }

    // MARK: Following the ring

    private func handle(_ received: ReceivedEvent) {
        noteIncarnation(received.event.incarnation)
        if case .member(let member)? = received.event.details {
            let epoch = received.event.epoch
            // Older than a members fetch we have (one epoch may carry several events).
            guard epoch >= membersEpoch else { return }
            // A skipped epoch may have been a state change we missed: fetch them all.
            if membersEpoch > 0 && epoch > membersEpoch + 1 { fetchMembers() }
            membersEpoch = epoch
            setState(WireMemberState(name: member.state), of: member.address)
            return
        }
        guard case .ring(let details)? = received.event.details else { return }
        guard details.members.count == details.weights.count else {
            logger.notice("ring.event.malformed", metadata: ["ring.epoch": "\(received.event.epoch)"])
            fetchRing()
            return
        }
        adopt(WireRingInfo.with {
            $0.ringEpoch = received.event.epoch
            $0.members = zip(details.members, details.weights).map { address, weight in
                WireMember.with { $0.address = address; $0.weight = weight }
            }
            $0.density = details.density
            $0.replicas = details.replicas
            $0.writeQuorum = details.writeQuorum
            $0.readQuorum = details.readQuorum
            $0.plan = details.plan
        })
    }

    /// A publisher this link has not heard from (placement restarted, or
    /// another replica became the leader): what it published before this
    /// node heard it is fetched rather than waited for.
    private func noteIncarnation(_ incarnation: UInt64) {
        guard incarnation != self.incarnation else { return }
        let previous = self.incarnation
        self.incarnation = incarnation
        guard previous != nil else { return }
        logger.info("placement.publisher.changed", metadata: ["events.incarnation": "\(incarnation)",
                                                              "placement.endpoint": "\(client.endpoint)"])
        fetchRing()
        fetchMembers()
    }

    /// Fetches the ring and plan now (this node found it is behind).
    func refresh() { fetchRing() }

    /// Sends a migration report to placement; `then` runs on the reactor thread.
    func report(_ type: String, _ details: WireMigrationDetails,
                then: @escaping (Result<WireReportMigrationReply, RPCError>) -> Void) {
        let request = WireReportMigrationRequest.with {
            $0.type = type
            $0.epoch = ring?.ringEpoch ?? 0
            $0.details = details
        }
        client.call(PlacementMethods.reportMigration, request, timeout: .seconds(2), then: then)
    }

    /// Reports an anti-entropy pass to placement, which publishes it; a failure is only logged.
    func reportRepair(_ details: WireRepairDetails) {
        let request = WireReportRepairRequest.with { $0.details = details }
        client.call(PlacementMethods.reportRepair, request, timeout: .seconds(2)) {
            [weak self] result in
            if case .failure(let error) = result {
                self?.logger.notice("anti_entropy.report.failed", metadata: ["rpc.error": "\(error)"])
            }
        }
    }

    private func fetchRing() {
        guard !ringFetchInFlight else { return }
        ringFetchInFlight = true
        client.call(PlacementMethods.getRing, WireGetRingRequest(), timeout: .seconds(2)) {
            [weak self] result in
            guard let self else { return }
            ringFetchInFlight = false
            switch result {
            case .success(let reply): adopt(reply.ring)
            case .failure(let error): logger.notice("ring.fetch.failed", metadata: ["rpc.error": "\(error)"])
            }
        }
    }

    /// Fetches every member's state (this node found its states may be behind).
    private func fetchMembers() {
        guard !membersFetchInFlight else { return }
        membersFetchInFlight = true
        client.call(PlacementMethods.getMembers, WireGetMembersRequest(), timeout: .seconds(2)) {
            [weak self] result in
            guard let self else { return }
            membersFetchInFlight = false
            switch result {
            case .success(let reply): adoptMembers(reply)
            case .failure(let error): logger.notice("members.fetch.failed", metadata: ["rpc.error": "\(error)"])
            }
        }
    }

    /// Takes the member states of a fetch unless state events already brought newer ones.
    private func adoptMembers(_ reply: WireGetMembersReply) {
        guard reply.epoch >= membersEpoch else { return }
        membersEpoch = reply.epoch
        var listed = Set<String>()
        for member in reply.members {
            listed.insert(member.address)
            setState(member.state == .unknown ? nil : member.state, of: member.address)
        }
        for address in memberStates.keys where !listed.contains(address) { setState(nil, of: address) }
    }

    /// Records a member's state (`nil`: removed) and tells `onMemberState` when it changed.
    private func setState(_ state: WireMemberState?, of address: String) {
        guard memberStates[address] != state else { return }
        if let state { memberStates[address] = state } else { memberStates.removeValue(forKey: address) }
        onMemberState?(address, state)
    }

    /// Adopts `info` if its ring, or its migration plan, is newer than ours.
    /// (Member states are not taken from rings: they follow their own epoch.)
    private func adopt(_ info: WireRingInfo) {
        if let ring, (info.ringEpoch, info.plan.version) <= (ring.ringEpoch, ring.plan.version) { return }
        ring = info
        logger.info("node.ring.adopted", metadata: ["ring.epoch": "\(info.ringEpoch)", "ring.members": "\(info.members.count)",
                                                    "plan.version": "\(info.plan.version)", "plan.pending": "\(info.plan.pending.count)"])
        onRingChange?(info)
    }

    // MARK: Leaving

    /// A leaving node reports its handoff complete once it holds no keys: its
    /// transfers are done, the plan settled its arcs and it swept them.
    private func reportHandoff() {
        guard !handoffReported else { return }
        if let held = keysHeld?(), held > 0 {
            if !handoffWaitLogged {
                handoffWaitLogged = true
                logger.notice("node.handoff.waiting", metadata: ["node.keys": "\(held)"])
            }
            return
        }
        handoffReported = true
        let request = WireHandoffCompleteRequest.with { $0.address = address }
        client.call(PlacementMethods.handoffComplete, request, timeout: .seconds(5)) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success: logger.info("node.handoff.reported")
            case .failure(let error):
                handoffReported = false
                logger.warning("node.handoff.report.failed", metadata: ["rpc.error": "\(error)"])
            }
        }
    }
}
