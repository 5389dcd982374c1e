import PlacementService
import Ring
import RingProtocol
import Testing
import TestKit

/// The migration plan placement computes on ring changes, driven through the
/// membership state machine with a fake clock.
@Suite struct MigrationPlannerTests {
    let settings = MembershipSettings(suspectAfter: .seconds(3), downAfter: .seconds(10), replicas: 3, density: 40)
    let three = ["10.0.0.1:7501", "10.0.0.2:7501", "10.0.0.3:7501"]

    /// Three members with nothing pending (every transfer of their joins done).
    func settledCluster(_ addresses: [String], clock: ManualClock) throws -> Membership {
        var membership = Membership(settings: settings)
        for address in addresses {
            _ = try membership.join(address: address, weight: 1, now: clock.now)
            completeAll(&membership)
        }
        #expect(membership.plan.pending.isEmpty && membership.plan.transfers.isEmpty)
        return membership
    }

    func completeAll(_ membership: inout Membership) {
        for transfer in membership.plan.transfers where !transfer.done {
            let completed = membership.completeTransfer(transfer.id)
            #expect(completed)
        }
    }

    func ring(_ addresses: [String]) throws -> HashRing {
        try HashRing(members: addresses.map { try RingMember(address: $0) })
    }

    /// Positions whose replica set (not order) differs between two rings.
    func changedPositions(_ old: [String], _ new: [String]) throws -> UInt64 {
        try ring(old).diff(to: ring(new), replicas: 3).changes
            .filter { Set($0.oldReplicas.map(\.address)) != Set($0.newReplicas.map(\.address)) }
            .reduce(0) { $0 + $1.arc.length }
    }

    func length(_ arc: WireArcRange) -> UInt64 {
        RingArc(first: arc.first, last: arc.last).length
    }

    @Test func theFirstMemberHasNothingToMove() throws {
        var membership = Membership(settings: settings)
        _ = try membership.join(address: three[0], weight: 1, now: ManualClock().now)
        #expect(membership.plan.pending.isEmpty && membership.plan.transfers.isEmpty)
    }

    @Test func aJoinMovesExactlyTheChangedArcsFromTheMembersThatLoseThem() throws {
        let clock = ManualClock()
        var membership = try settledCluster(three, clock: clock)
        let joiner = "10.0.0.4:7501"
        let before = membership.plan.version
        _ = try membership.join(address: joiner, weight: 1, now: clock.now)
        let plan = membership.plan
        #expect(plan.version > before && plan.ringEpoch == membership.ringEpoch)
        // Exactly the positions whose replica set changed are pending.
        #expect(plan.pending.reduce(0) { $0 + length($1.arc) } == (try changedPositions(three, three + [joiner])))
        for arc in plan.pending {
            #expect(arc.newReplicas.contains(joiner) && !arc.oldReplicas.contains(joiner))
            #expect(Set(arc.oldReplicas).count == 3 && Set(arc.newReplicas).count == 3)
        }
        // Every transfer goes to the joiner from a member that loses the arc (all are live).
        #expect(!plan.transfers.isEmpty)
        for transfer in plan.transfers {
            #expect(transfer.to == joiner && !transfer.done)
            for arc in transfer.arcs {
                let pending = try #require(plan.pending.first { $0.arc == arc })
                #expect(pending.oldReplicas.contains(transfer.from) && !pending.newReplicas.contains(transfer.from))
            }
        }
        // Each pending arc has exactly one transfer (its one loser).
        let covered = plan.transfers.flatMap(\.arcs)
        #expect(covered.count == plan.pending.count && Set(covered) == Set(plan.pending.map(\.arc)))
    }

    @Test func arcsSettleWhenAllTheirTransfersAreDone() throws {
        let clock = ManualClock()
        var membership = try settledCluster(three, clock: clock)
        _ = try membership.join(address: "10.0.0.4:7501", weight: 1, now: clock.now)
        let transfers = membership.plan.transfers
        let first = transfers[0]
        let version = membership.plan.version
        let completed = membership.completeTransfer(first.id)
        #expect(completed)
        #expect(membership.plan.version == version + 1)
        #expect(!membership.plan.pending.contains { first.arcs.contains($0.arc) })
        #expect(!membership.plan.transfers.contains { $0.id == first.id })
        let again = membership.completeTransfer(first.id)
        #expect(!again, "a second report of the same transfer changes nothing")
        let unknown = membership.completeTransfer(999_999)
        #expect(!unknown)
        completeAll(&membership)
        #expect(membership.plan.pending.isEmpty && membership.plan.transfers.isEmpty)
    }

    @Test func aLeavingMemberSendsEverythingItHeld() throws {
        let clock = ManualClock()
        let four = three + ["10.0.0.4:7501"]
        var membership = try settledCluster(four, clock: clock)
        _ = try membership.leave(address: four[3], now: clock.now)
        let plan = membership.plan
        #expect(plan.pending.reduce(0) { $0 + length($1.arc) } == (try changedPositions(four, three)))
        #expect(plan.pending.allSatisfy { $0.oldReplicas.contains(four[3]) })
        #expect(plan.transfers.allSatisfy { $0.from == four[3] })
    }

    @Test func removingADeadMemberHasTheSurvivorsRebuildItsReplicas() throws {
        var clock = ManualClock()
        let four = three + ["10.0.0.4:7501"]
        var membership = try settledCluster(four, clock: clock)
        // The fourth member dies: silent past the down timeout.
        clock.advance(.seconds(11))
        for address in three { _ = try membership.heartbeat(address: address, now: clock.now) }
        _ = membership.tick(now: clock.now)
        #expect(membership.member(four[3])?.state == .down)
        _ = try membership.remove(address: four[3], now: clock.now)
        let plan = membership.plan
        #expect(!plan.pending.isEmpty)
        for transfer in plan.transfers {
            #expect(transfer.from != four[3])
            for arc in transfer.arcs {
                let pending = try #require(plan.pending.first { $0.arc == arc })
                // A survivor that keeps the arc sends it to the member that gains it.
                #expect(pending.oldReplicas.contains(transfer.from) && pending.newReplicas.contains(transfer.from))
                #expect(!pending.oldReplicas.contains(transfer.to) && pending.newReplicas.contains(transfer.to))
            }
        }
        // Both survivors of each arc send (either may hold writes the other missed).
        #expect(plan.transfers.flatMap(\.arcs).count == 2 * plan.pending.count)
    }

    @Test func aDownLoserIsBackedUpByTheMembersThatStay() throws {
        var clock = ManualClock()
        var membership = try settledCluster(three, clock: clock)
        // The third member goes silent, then down.
        clock.advance(.seconds(11))
        for address in three.prefix(2) { _ = try membership.heartbeat(address: address, now: clock.now) }
        _ = membership.tick(now: clock.now)
        #expect(membership.member(three[2])?.state == .down)
        _ = try membership.join(address: "10.0.0.4:7501", weight: 1, now: clock.now)
        #expect(!membership.plan.transfers.contains { $0.from == three[2] })
        for arc in membership.plan.pending where arc.oldReplicas.contains(three[2]) && !arc.newReplicas.contains(three[2]) {
            let senders = membership.plan.transfers.filter { $0.arcs.contains(arc.arc) }.map(\.from)
            #expect(Set(senders) == Set(arc.oldReplicas.filter { $0 != three[2] }))
        }
    }

    @Test func withOneReplicaADeadMembersArcsAreLostAndLeaveThePlan() throws {
        var clock = ManualClock()
        let two = Array(three.prefix(2))
        var membership = Membership(settings: MembershipSettings(suspectAfter: .seconds(3), downAfter: .seconds(10), replicas: 1))
        for address in two {
            _ = try membership.join(address: address, weight: 1, now: clock.now)
            completeAll(&membership)
        }
        clock.advance(.seconds(11))
        _ = try membership.heartbeat(address: two[0], now: clock.now)
        _ = membership.tick(now: clock.now)
        #expect(membership.member(two[1])?.state == .down)
        _ = try membership.remove(address: two[1], now: clock.now)
        // Nobody else held a copy: nothing to move, every arc it owned is reported lost.
        #expect(membership.plan.pending.isEmpty && membership.plan.transfers.isEmpty)
        let owned = try ring(two).segments(replicas: 1).filter { $0.replicas.map(\.address) == [two[1]] }
        #expect(!owned.isEmpty)
        #expect(membership.lostArcs.allSatisfy { $0.oldReplicas == [two[1]] && $0.newReplicas == [two[0]] })
        #expect(membership.lostArcs.reduce(0) { $0 + length($1.arc) } == owned.reduce(0) { $0 + UInt64($1.range.count) })
    }

    @Test func aSecondJoinPlansFromWhatIsSettledNotFromAHalfFilledTarget() throws {
        let clock = ManualClock()
        var membership = try settledCluster(three, clock: clock)
        _ = try membership.join(address: "10.0.0.4:7501", weight: 1, now: clock.now)
        let first = membership.plan
        _ = try membership.join(address: "10.0.0.5:7501", weight: 1, now: clock.now)
        let second = membership.plan
        // Old sets only ever name the three members that hold the data.
        #expect(second.pending.allSatisfy { Set($0.oldReplicas).isSubset(of: Set(three)) })
        #expect(second.transfers.allSatisfy { three.contains($0.from) })
        // Every position the first plan had pending is still pending or now owned by the same three.
        let all = three + ["10.0.0.4:7501", "10.0.0.5:7501"]
        #expect(second.pending.reduce(0) { $0 + length($1.arc) } == (try changedPositions(three, all)))
        #expect(first.version < second.version)
        completeAll(&membership)
        #expect(membership.plan.pending.isEmpty)
    }

    @Test func thePlanIsPersistedAndRestored() throws {
        let clock = ManualClock()
        var membership = try settledCluster(three, clock: clock)
        _ = try membership.join(address: "10.0.0.4:7501", weight: 1, now: clock.now)
        let restored = Membership(restoring: membership.persisted, settings: settings, now: clock.now)
        #expect(restored.plan == membership.plan)
        #expect(restored.ringInfo.plan == membership.plan)
    }
}
