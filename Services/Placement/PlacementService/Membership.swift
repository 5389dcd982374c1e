import Basics
import Ring
import RingProtocol

/// A member's liveness as placement sees it.
public enum MemberState: String, Sendable, CaseIterable {
    case up, suspect, down, leaving
}

/// One member as the state machine tracks it.
public struct MemberRecord: Sendable, Equatable {
    public let address: String
    public let weight: Int
    public internal(set) var state: MemberState
    /// The cluster epoch of the last state change.
    public internal(set) var stateEpoch: UInt64
    /// Wall-clock time of the last state change.
    public internal(set) var stateSinceWallMicros: Int64
    var lastHeartbeat: Duration
    var stateSince: Duration
    /// Whether the node says it caught up since its start (hints delivered, a
    /// first anti-entropy pass done). Learnt from heartbeats, not persisted: a
    /// restored member shows false until its next heartbeat.
    public internal(set) var caughtUp = false

    /// Whether the member is part of the ring (everyone but a leaving member).
    public var inRing: Bool { state != .leaving }
}

/// Something placement must publish after a change has been persisted.
public struct MembershipEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case memberJoined = "member_joined"
        case memberLeaving = "member_leaving"
        case memberSuspect = "member_suspect"
        case memberDown = "member_down"
        case memberUp = "member_up"
        case memberRemoved = "member_removed"
        case ringChanged = "ring_changed"
    }

    public let kind: Kind
    public let epoch: UInt64
    /// The member concerned; empty for `ringChanged`.
    public let address: String
    public let state: String
    public let previousState: String
    public let weight: Int

    /// The PUB topic: `ring` for ring changes, `membership` otherwise.
    public var topic: String { kind == .ringChanged ? "ring" : "membership" }
}

/// Cluster membership and failure detection as a pure state machine.
///
/// Every method takes the current time as an input and returns the events to
/// publish; it never reads a clock, sleeps or does I/O, so it is tested with a
/// fake clock. Every change bumps the cluster epoch; a change of the ring's
/// member set also records the ring epoch and yields a `ringChanged` event.
/// A refused request throws `MembershipError` and changes nothing.
public struct Membership: Sendable {
    public let settings: MembershipSettings
    /// Bumped by every change.
    public private(set) var epoch: UInt64 = 0
    /// The epoch of the last change to the ring's member set.
    public private(set) var ringEpoch: UInt64 = 0
    private var records: [String: MemberRecord] = [:]
    /// Arcs moving to new replicas and the transfers moving them (see `MigrationPlanner`).
    public private(set) var plan = WireMigrationPlan()
    /// The ring of the members in the ring, kept to diff against the next one.
    private var ring: HashRing?
    /// Arcs the last replan found without a live replica, for placement to report.
    public private(set) var lostArcs: [WirePendingArc] = []

    /// The heaviest weight accepted, which keeps the ring's size bounded.
    public static let maximumWeight = 1000

    public init(settings: MembershipSettings = MembershipSettings()) {
        self.settings = settings
    }

    /// Restores persisted membership. Every member's heartbeat clock restarts
    /// at `now`, so a restarted placement service does not declare everyone
    /// down at once: members get a full timeout to heartbeat again.
    public init(restoring state: WirePlacementState, settings: MembershipSettings, now: ServiceTime) {
        self.settings = settings
        epoch = state.epoch
        ringEpoch = state.ringEpoch
        plan = state.plan
        for member in state.members {
            guard let memberState = MemberState(wire: member.state) else { continue }
            records[member.address] = MemberRecord(
                address: member.address, weight: Int(max(1, member.weight)), state: memberState,
                stateEpoch: member.stateEpoch, stateSinceWallMicros: member.stateSinceUnixMicros,
                lastHeartbeat: now.monotonic, stateSince: now.monotonic)
        }
        ring = Self.hashRing(of: ringMembers, density: settings.density)
    }

    /// Every member, sorted by address.
    public var members: [MemberRecord] {
        records.values.sorted { $0.address < $1.address }
    }

    /// The members in the ring, sorted by address.
    public var ringMembers: [MemberRecord] { members.filter(\.inRing) }

    public func member(_ address: String) -> MemberRecord? { records[address] }

    // MARK: Requests

    /// Adds a member, up and in the ring.
    public mutating func join(address: String, weight: Int, now: ServiceTime) throws(MembershipError) -> [MembershipEvent] {
        let weight = weight == 0 ? 1 : weight
        guard (1...Self.maximumWeight).contains(weight) else {
            throw .invalidWeight("weight \(weight) must be between 1 and \(Self.maximumWeight)")
        }
        do {
            _ = try RingMember(address: address, weight: weight)
        } catch {
            throw .malformedAddress("'\(address)' is not a valid host:port member address: \(error.detail)")
        }
        guard records[address] == nil else { throw .alreadyMember(address) }
        epoch += 1
        records[address] = MemberRecord(address: address, weight: weight, state: .up, stateEpoch: epoch,
                                        stateSinceWallMicros: now.wallMicros, lastHeartbeat: now.monotonic,
                                        stateSince: now.monotonic)
        return [event(.memberJoined, address, previous: "")] + ringChanged()
    }

    /// Starts a graceful leave: the member leaves the ring now (its arcs get new
    /// owners) and is removed when it reports its handoff complete.
    public mutating func leave(address: String, now: ServiceTime) throws(MembershipError) -> [MembershipEvent] {
        guard let record = records[address] else { throw .notMember(address) }
        guard record.state != .leaving else { throw .alreadyLeaving(address) }
        let previous = record.state
        setState(address, .leaving, now: now)
        return [event(.memberLeaving, address, previous: previous.rawValue)] + ringChanged()
    }

    /// Removes a member at once: one placement no longer hears from (suspect
    /// or down), or a leaving one. A member that is up is refused unless
    /// `force` is set: removing it drops its replicas from the plan's senders
    /// while it still holds data and serves, which is what `leave` is for.
    public mutating func remove(address: String, force: Bool = false, now: ServiceTime) throws(MembershipError) -> [MembershipEvent] {
        guard let record = records[address] else { throw .notMember(address) }
        guard force || record.state != .up else { throw .memberUp(address) }
        records.removeValue(forKey: address)
        epoch += 1
        let removed = MembershipEvent(kind: .memberRemoved, epoch: epoch, address: address, state: "removed",
                                      previousState: record.state.rawValue, weight: record.weight)
        if record.inRing { return [removed] + ringChanged() }
        replan()
        return [removed]
    }

    /// A leaving member handed off every arc: remove it.
    public mutating func handoffComplete(address: String, now: ServiceTime) throws(MembershipError) -> [MembershipEvent] {
        guard let record = records[address] else { throw .notMember(address) }
        guard record.state == .leaving else { throw .notLeaving(address) }
        return try remove(address: address, now: now)
    }

    /// Records a heartbeat, with the node's caught-up flag when it sends one;
    /// a suspect or down member comes back up.
    public mutating func heartbeat(address: String, caughtUp: Bool? = nil, now: ServiceTime) throws(MembershipError) -> [MembershipEvent] {
        guard var record = records[address] else { throw .notMember(address) }
        record.lastHeartbeat = now.monotonic
        if let caughtUp { record.caughtUp = caughtUp }
        records[address] = record
        guard record.state == .suspect || record.state == .down else { return [] }
        let previous = record.state
        setState(address, .up, now: now)
        return [event(.memberUp, address, previous: previous.rawValue)]
    }

    /// Advances failure detection to `now`: up → suspect → down → (optionally) removed.
    public mutating func tick(now: ServiceTime) -> [MembershipEvent] {
        var events: [MembershipEvent] = []
        for record in members {
            let silence = now.monotonic - record.lastHeartbeat
            if record.state == .up && silence >= settings.suspectAfter {
                setState(record.address, .suspect, now: now)
                events.append(event(.memberSuspect, record.address, previous: "up"))
            }
            if records[record.address]?.state == .suspect && silence >= settings.downAfter {
                setState(record.address, .down, now: now)
                // Writes now miss it: it must catch up when it returns.
                records[record.address]?.caughtUp = false
                events.append(event(.memberDown, record.address, previous: "suspect"))
                // Its transfers pass to live replicas.
                if plan.transfers.contains(where: { $0.from == record.address && !$0.done }) { replan() }
            }
            if let removeAfter = settings.removeAfter, let current = records[record.address], current.state == .down,
               now.monotonic - current.stateSince >= removeAfter {
                // Cannot fail: the member exists.
                events += (try? remove(address: record.address, now: now)) ?? []
            }
        }
        return events
    }

    // MARK: Views for the wire

    /// What to persist: enough to restore membership and both epochs.
    public var persisted: WirePlacementState {
        WirePlacementState.with {
            $0.epoch = epoch
            $0.ringEpoch = ringEpoch
            $0.members = members.map(\.wire)
            $0.plan = plan
        }
    }

    /// The ring every node computes.
    public var ringInfo: WireRingInfo {
        WireRingInfo.with {
            $0.ringEpoch = ringEpoch
            $0.members = ringMembers.map(\.wire)
            $0.density = UInt32(settings.density)
            $0.replicas = UInt32(settings.replicas)
            $0.writeQuorum = UInt32(settings.writeQuorum)
            $0.readQuorum = UInt32(settings.readQuorum)
            $0.plan = plan
        }
    }

    // MARK: Migration

    /// A node reports a transfer finished: arcs whose transfers are all done
    /// settle. Returns false when the transfer is not in the plan (cancelled
    /// by a replan, or reported twice).
    public mutating func completeTransfer(_ id: UInt64) -> Bool {
        var next = plan
        guard MigrationPlanner.complete(transfer: id, in: &next) else { return false }
        next.version = plan.version + 1
        plan = next
        lostArcs = []
        return true
    }

    /// Records a sender's progress report on a transfer of the plan (not a
    /// change of the plan: its version stays).
    public mutating func recordProgress(_ id: UInt64, _ update: (inout WireTransfer) -> Void) -> Bool {
        guard let index = plan.transfers.firstIndex(where: { $0.id == id }) else { return false }
        update(&plan.transfers[index])
        return true
    }

    // MARK: Internals

    private mutating func setState(_ address: String, _ state: MemberState, now: ServiceTime) {
        epoch += 1
        records[address]?.state = state
        records[address]?.stateEpoch = epoch
        records[address]?.stateSinceWallMicros = now.wallMicros
        records[address]?.stateSince = now.monotonic
    }

    private func event(_ kind: MembershipEvent.Kind, _ address: String, previous: String) -> MembershipEvent {
        let record = records[address]
        return MembershipEvent(kind: kind, epoch: epoch, address: address, state: record?.state.rawValue ?? "removed",
                               previousState: previous, weight: record?.weight ?? 0)
    }

    private mutating func ringChanged() -> [MembershipEvent] {
        ringEpoch = epoch
        replan()
        return [MembershipEvent(kind: .ringChanged, epoch: epoch, address: "", state: "", previousState: "", weight: 0)]
    }
}

extension Membership {
    /// Plans the move from the ring we had to the ring of the current members.
    mutating func replan() {
        let newRing = Self.hashRing(of: ringMembers, density: settings.density)
        let outcome = MigrationPlanner.plan(
            previous: plan, oldRing: ring ?? newRing, newRing: newRing, replicas: settings.replicas,
            version: plan.version + 1, ringEpoch: ringEpoch
        ) { [records] address in
            guard let record = records[address] else { return false }
            return record.state != .down
        }
        plan = outcome.plan
        lostArcs = outcome.lost
        ring = newRing
    }

    static func hashRing(of members: [MemberRecord], density: Int) -> HashRing? {
        let ringMembers = members.compactMap { try? RingMember(address: $0.address, weight: $0.weight) }
        return ringMembers.isEmpty ? nil : try? HashRing(members: ringMembers, density: density)
    }
}

extension MemberRecord {
    /// The member as sent on the wire.
    public var wire: WireMember {
        WireMember.with {
            $0.address = address
            $0.weight = UInt32(weight)
            $0.state = state.wire
            $0.stateEpoch = stateEpoch
            $0.stateSinceUnixMicros = stateSinceWallMicros
            $0.caughtUp = caughtUp
        }
    }
}

extension MemberState {
    public var wire: WireMemberState {
        switch self {
        case .up: .up
        case .suspect: .suspect
        case .down: .down
        case .leaving: .leaving
        }
    }

    public init?(wire: WireMemberState) {
        switch wire {
        case .up: self = .up
        case .suspect: self = .suspect
        case .down: self = .down
        case .leaving: self = .leaving
        default: return nil
        }
    }
}
