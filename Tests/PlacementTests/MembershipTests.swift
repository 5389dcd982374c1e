import PlacementService
import RingProtocol
import Testing
import TestKit

@Suite struct MembershipTests {
    let settings = MembershipSettings(suspectAfter: .seconds(3), downAfter: .seconds(10), replicas: 3, density: 40)

    func cluster(_ addresses: [String], clock: ManualClock) throws -> Membership {
        var membership = Membership(settings: settings)
        for address in addresses { _ = try membership.join(address: address, weight: 1, now: clock.now) }
        return membership
    }

    @Test func joinAddsAnUpMemberBumpsTheEpochAndChangesTheRing() throws {
        let clock = ManualClock()
        var membership = Membership(settings: settings)
        let events = try membership.join(address: "10.0.0.1:7501", weight: 2, now: clock.now)
        #expect(events.map(\.kind) == [.memberJoined, .ringChanged])
        #expect(events.allSatisfy { $0.epoch == 1 })
        #expect(membership.epoch == 1 && membership.ringEpoch == 1)
        #expect(membership.member("10.0.0.1:7501")?.state == .up)
        #expect(membership.member("10.0.0.1:7501")?.weight == 2)
        #expect(membership.ringInfo.members.map(\.address) == ["10.0.0.1:7501"])
        #expect(membership.ringInfo.replicas == 3 && membership.ringInfo.density == 40)
    }

    @Test func badRequestsAreRefusedWithoutAnyChange() throws {
        let clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501"], clock: clock)
        let before = membership.persisted
        #expect(throws: MembershipError.alreadyMemberKind) { try membership.join(address: "10.0.0.1:7501", weight: 1, now: clock.now) }
        #expect(throws: MembershipError.notMemberKind) { try membership.leave(address: "10.0.0.9:7501", now: clock.now) }
        #expect(throws: MembershipError.notMemberKind) { try membership.remove(address: "10.0.0.9:7501", now: clock.now) }
        #expect(throws: MembershipError.notMemberKind) { try membership.heartbeat(address: "10.0.0.9:7501", now: clock.now) }
        #expect(throws: MembershipError.notLeavingKind) { try membership.handoffComplete(address: "10.0.0.1:7501", now: clock.now) }
        for address in ["", "nohost", "10.0.0.1:0", "10.0.0.1:99999", ":7501", "10.0.0.1:port", "a b:1"] {
            #expect(throws: MembershipError.malformedAddressKind, "\(address)") {
                try membership.join(address: address, weight: 1, now: clock.now)
            }
        }
        #expect(throws: MembershipError.invalidWeightKind) { try membership.join(address: "10.0.0.2:7501", weight: -1, now: clock.now) }
        #expect(throws: MembershipError.invalidWeightKind) { try membership.join(address: "10.0.0.2:7501", weight: 1001, now: clock.now) }
        #expect(membership.persisted == before)
    }

    @Test func errorsMapToGRPCStatusCodes() {
        #expect(MembershipError.alreadyMember("a").rpcError.code == .alreadyExists)
        #expect(MembershipError.notMember("a").rpcError.code == .notFound)
        #expect(MembershipError.malformedAddress("a").rpcError.code == .invalidArgument)
        #expect(MembershipError.notLeaving("a").rpcError.code == .failedPrecondition)
        #expect(MembershipError.memberUp("a").rpcError.code == .failedPrecondition)
    }

    @Test func missedHeartbeatsMakeAMemberSuspectThenDownInOrder() throws {
        var clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501", "10.0.0.2:7501"], clock: clock)
        let epoch = membership.epoch
        clock.advance(.seconds(2))
        _ = try membership.heartbeat(address: "10.0.0.2:7501", now: clock.now)
        #expect(membership.tick(now: clock.now).isEmpty)
        clock.advance(.seconds(1))  // 3 s since 10.0.0.1's last heartbeat
        let suspect = membership.tick(now: clock.now)
        #expect(suspect.map(\.kind) == [.memberSuspect])
        #expect(suspect.first?.address == "10.0.0.1:7501")
        #expect(suspect.first?.epoch == epoch + 1)
        #expect(membership.member("10.0.0.1:7501")?.state == .suspect)
        clock.advance(.seconds(6))
        _ = try membership.heartbeat(address: "10.0.0.2:7501", now: clock.now)
        #expect(membership.tick(now: clock.now).isEmpty)  // 9 s: still suspect
        clock.advance(.seconds(1))
        let down = membership.tick(now: clock.now)
        #expect(down.map(\.kind) == [.memberDown])
        #expect(down.first?.epoch == epoch + 2)
        #expect(membership.member("10.0.0.1:7501")?.state == .down)
        // Down is not removed: it stays in the ring, and the ring epoch did not move.
        #expect(membership.ringInfo.members.count == 2)
        #expect(membership.ringEpoch == epoch)
        #expect(membership.member("10.0.0.2:7501")?.state == .up)
    }

    @Test func aLongSilenceYieldsSuspectThenDownInOneTick() throws {
        var clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501"], clock: clock)
        clock.advance(.seconds(60))
        let events = membership.tick(now: clock.now)
        #expect(events.map(\.kind) == [.memberSuspect, .memberDown])
        #expect(events[0].epoch < events[1].epoch)
    }

    @Test func heartbeatsBringASuspectOrDownMemberBackUp() throws {
        var clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501"], clock: clock)
        clock.advance(.seconds(20))
        _ = membership.tick(now: clock.now)
        #expect(membership.member("10.0.0.1:7501")?.state == .down)
        let events = try membership.heartbeat(address: "10.0.0.1:7501", now: clock.now)
        #expect(events.map(\.kind) == [.memberUp])
        #expect(events.first?.previousState == "down")
        #expect(membership.member("10.0.0.1:7501")?.state == .up)
        // A heartbeat from an up member changes nothing.
        let epoch = membership.epoch
        #expect(try membership.heartbeat(address: "10.0.0.1:7501", now: clock.now).isEmpty)
        #expect(membership.epoch == epoch)
    }

    @Test func gracefulLeaveLeavesTheRingAtOnceAndIsRemovedAfterHandoff() throws {
        let clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501", "10.0.0.2:7501"], clock: clock)
        let leave = try membership.leave(address: "10.0.0.1:7501", now: clock.now)
        #expect(leave.map(\.kind) == [.memberLeaving, .ringChanged])
        #expect(membership.ringInfo.members.map(\.address) == ["10.0.0.2:7501"])
        #expect(membership.members.count == 2)
        #expect(throws: MembershipError.alreadyLeavingKind) { try membership.leave(address: "10.0.0.1:7501", now: clock.now) }
        let ringEpoch = membership.ringEpoch
        let done = try membership.handoffComplete(address: "10.0.0.1:7501", now: clock.now)
        #expect(done.map(\.kind) == [.memberRemoved])  // already out of the ring
        #expect(membership.ringEpoch == ringEpoch)
        #expect(membership.members.map(\.address) == ["10.0.0.2:7501"])
    }

    @Test func leavingMembersAreNotFailureDetected() throws {
        var clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501"], clock: clock)
        _ = try membership.leave(address: "10.0.0.1:7501", now: clock.now)
        clock.advance(.seconds(60))
        #expect(membership.tick(now: clock.now).isEmpty)
    }

    @Test func removeDropsAMemberAndChangesTheRing() throws {
        let clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501", "10.0.0.2:7501"], clock: clock)
        // An up member needs force (see the next test).
        let events = try membership.remove(address: "10.0.0.2:7501", force: true, now: clock.now)
        #expect(events.map(\.kind) == [.memberRemoved, .ringChanged])
        #expect(events[0].previousState == "up")
        #expect(membership.ringInfo.members.map(\.address) == ["10.0.0.1:7501"])
        #expect(throws: MembershipError.notMemberKind) { try membership.heartbeat(address: "10.0.0.2:7501", now: clock.now) }
    }

    @Test func removeRefusesAnUpMemberUnlessForced() throws {
        let clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501", "10.0.0.2:7501"], clock: clock)
        let before = membership.persisted
        do {
            _ = try membership.remove(address: "10.0.0.2:7501", now: clock.now)
            Issue.record("removing an up member without force was accepted")
        } catch {
            #expect(error == .memberUpKind)
            #expect(error.rpcError.code == .failedPrecondition)
            #expect(error.message == "10.0.0.2:7501 is up: remove is for a dead member; use leave to take a live one out "
                + "(it hands its arcs off first), or remove --force")
        }
        #expect(membership.persisted == before, "a refused remove changes nothing")
        let events = try membership.remove(address: "10.0.0.2:7501", force: true, now: clock.now)
        #expect(events.map(\.kind) == [.memberRemoved, .ringChanged])
        #expect(membership.members.map(\.address) == ["10.0.0.1:7501"])
    }

    @Test func removeTakesSuspectDownAndLeavingMembersWithoutForce() throws {
        var clock = ManualClock()
        let addresses = ["10.0.0.1:7501", "10.0.0.2:7501", "10.0.0.3:7501", "10.0.0.4:7501"]
        var membership = try cluster(addresses, clock: clock)
        // 10.0.0.3 falls silent past down, 10.0.0.2 (later) past suspect only; 10.0.0.4 is leaving.
        clock.advance(.seconds(7))
        for address in [addresses[0], addresses[1], addresses[3]] { _ = try membership.heartbeat(address: address, now: clock.now) }
        _ = membership.tick(now: clock.now)
        clock.advance(.seconds(4))
        for address in [addresses[0], addresses[3]] { _ = try membership.heartbeat(address: address, now: clock.now) }
        _ = membership.tick(now: clock.now)
        _ = try membership.leave(address: addresses[3], now: clock.now)
        #expect(membership.members.map(\.state) == [.up, .suspect, .down, .leaving])
        for (address, state) in [(addresses[1], "suspect"), (addresses[2], "down"), (addresses[3], "leaving")] {
            let events = try membership.remove(address: address, now: clock.now)
            #expect(events.first?.kind == .memberRemoved && events.first?.previousState == state, "\(address)")
        }
        #expect(throws: MembershipError.memberUpKind) { try membership.remove(address: addresses[0], now: clock.now) }
        #expect(membership.members.map(\.address) == [addresses[0]])
    }

    @Test func automaticRemovalAfterTheConfiguredDownTime() throws {
        var clock = ManualClock()
        var membership = Membership(settings: MembershipSettings(suspectAfter: .seconds(1), downAfter: .seconds(2), removeAfter: .seconds(5)))
        _ = try membership.join(address: "10.0.0.1:7501", weight: 1, now: clock.now)
        _ = try membership.join(address: "10.0.0.2:7501", weight: 1, now: clock.now)
        clock.advance(.seconds(2))
        _ = try membership.heartbeat(address: "10.0.0.2:7501", now: clock.now)
        #expect(membership.tick(now: clock.now).map(\.kind) == [.memberSuspect, .memberDown])
        for _ in 0..<4 {
            clock.advance(.seconds(1))
            _ = try membership.heartbeat(address: "10.0.0.2:7501", now: clock.now)
            #expect(membership.tick(now: clock.now).isEmpty)
        }
        clock.advance(.seconds(1))
        _ = try membership.heartbeat(address: "10.0.0.2:7501", now: clock.now)
        #expect(membership.tick(now: clock.now).map(\.kind) == [.memberRemoved, .ringChanged])
        #expect(membership.members.map(\.address) == ["10.0.0.2:7501"])
    }

    @Test func restoringKeepsMembersAndEpochsAndRestartsHeartbeatClocks() throws {
        var clock = ManualClock()
        var membership = try cluster(["10.0.0.1:7501", "10.0.0.2:7501", "10.0.0.3:7501"], clock: clock)
        _ = try membership.leave(address: "10.0.0.3:7501", now: clock.now)
        clock.advance(.seconds(5))
        _ = try membership.heartbeat(address: "10.0.0.2:7501", now: clock.now)
        _ = membership.tick(now: clock.now)  // 10.0.0.1 suspect
        let saved = membership.persisted

        // A restart long after the last heartbeats: nobody is declared down at once.
        var later = ManualClock()
        later.advance(.seconds(1000))
        var restored = Membership(restoring: saved, settings: settings, now: later.now)
        #expect(restored.epoch == membership.epoch)
        #expect(restored.ringEpoch == membership.ringEpoch)
        #expect(restored.members.map(\.state) == [.suspect, .up, .leaving])
        #expect(restored.ringInfo == membership.ringInfo)
        #expect(restored.tick(now: later.now).isEmpty)
        later.advance(.seconds(3))
        #expect(restored.tick(now: later.now).map(\.kind) == [.memberSuspect])  // 10.0.0.2; 10.0.0.1 already suspect
        later.advance(.seconds(7))
        #expect(restored.tick(now: later.now).map(\.kind) == [.memberDown, .memberDown])
    }

    @Test func weightZeroMeansTheDefaultWeight() throws {
        var membership = Membership(settings: settings)
        _ = try membership.join(address: "10.0.0.1:7501", weight: 0, now: ManualClock().now)
        #expect(membership.member("10.0.0.1:7501")?.weight == 1)
    }
}
