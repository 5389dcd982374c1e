import PlacementService
import RingProtocol
import Testing
import TestKit

/// Placement's view of whether each member caught up since its start: learnt
/// from heartbeats, lost when the member goes down or restarts, not persisted.
@Suite struct CaughtUpTests {
    let settings = MembershipSettings(suspectAfter: .seconds(3), downAfter: .seconds(10), replicas: 3, density: 40)
    let node = "10.0.0.1:7501"

    func membership(_ clock: ManualClock) throws -> Membership {
        var membership = Membership(settings: settings)
        for address in [node, "10.0.0.2:7501", "10.0.0.3:7501"] { _ = try membership.join(address: address, weight: 1, now: clock.now) }
        return membership
    }

    @Test func aJoinedMemberIsNotCaughtUpUntilItsHeartbeatSaysSo() throws {
        var clock = ManualClock()
        var membership = try membership(clock)
        #expect(membership.member(node)?.caughtUp == false)
        #expect(membership.members.allSatisfy { !$0.wire.caughtUp })
        clock.advance(.seconds(1))
        let epoch = membership.epoch
        #expect(try membership.heartbeat(address: node, caughtUp: false, now: clock.now).isEmpty)
        #expect(membership.member(node)?.caughtUp == false)
        #expect(try membership.heartbeat(address: node, caughtUp: true, now: clock.now).isEmpty)
        #expect(membership.member(node)?.caughtUp == true)
        #expect(membership.member(node)?.wire.caughtUp == true)
        // Not a membership change: no epoch, no event.
        #expect(membership.epoch == epoch)
        // A heartbeat without the flag leaves it as it was.
        _ = try membership.heartbeat(address: node, now: clock.now)
        #expect(membership.member(node)?.caughtUp == true)
    }

    @Test func goingDownOrRestartingClearsIt() throws {
        var clock = ManualClock()
        var membership = try membership(clock)
        for address in membership.members.map(\.address) { _ = try membership.heartbeat(address: address, caughtUp: true, now: clock.now) }
        // Suspect keeps it (the node may only be slow); down clears it.
        clock.advance(.seconds(4))
        for address in membership.members.map(\.address) where address != node {
            _ = try membership.heartbeat(address: address, caughtUp: true, now: clock.now)
        }
        _ = membership.tick(now: clock.now)
        #expect(membership.member(node)?.state == .suspect && membership.member(node)?.caughtUp == true)
        clock.advance(.seconds(7))
        for address in membership.members.map(\.address) where address != node {
            _ = try membership.heartbeat(address: address, caughtUp: true, now: clock.now)
        }
        _ = membership.tick(now: clock.now)
        #expect(membership.member(node)?.state == .down && membership.member(node)?.caughtUp == false)
        // Back up, still catching up; then caught up.
        let events = try membership.heartbeat(address: node, caughtUp: false, now: clock.now)
        #expect(events.map(\.kind) == [.memberUp])
        #expect(membership.member(node)?.caughtUp == false)
        _ = try membership.heartbeat(address: node, caughtUp: true, now: clock.now)
        #expect(membership.member(node)?.caughtUp == true)
        // A restarted node says it is catching up in its first heartbeat.
        _ = try membership.heartbeat(address: node, caughtUp: false, now: clock.now)
        #expect(membership.member(node)?.caughtUp == false)
    }

    @Test func aRestoredPlacementLearnsItFromTheNextHeartbeat() throws {
        var clock = ManualClock()
        var membership = try membership(clock)
        _ = try membership.heartbeat(address: node, caughtUp: true, now: clock.now)
        clock.advance(.seconds(1))
        var restored = Membership(restoring: membership.persisted, settings: settings, now: clock.now)
        #expect(restored.member(node)?.caughtUp == false)
        _ = try restored.heartbeat(address: node, caughtUp: true, now: clock.now)
        #expect(restored.member(node)?.caughtUp == true)
        #expect(restored.epoch == membership.epoch)
    }
}
