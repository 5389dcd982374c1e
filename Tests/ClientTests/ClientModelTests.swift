import Ring
import RingProtocol
@testable import RingstoreClient
import Testing

/// The client library's domain types and their conversions from and to the wire.
@Suite struct ClientModelTests {
    @Test func aQuorumLeavesUnsetFiguresToTheCluster() {
        #expect(Quorum().wire == WireQuorum())
        #expect(Quorum(n: 5, w: 2).wire == WireQuorum.with { $0.n = 5; $0.w = 2 })
        #expect(Quorum(n: 3, r: 1).wire == WireQuorum.with { $0.n = 3; $0.r = 1 })
    }

    @Test func versionsOrderByTimestampThenWriterAndRoundTrip() {
        let wire = WireVersion.with { $0.timestamp = 7; $0.writer = 9 }
        let version = Version(wire)
        #expect(version == Version(timestamp: 7, writer: 9))
        #expect(version.wire == wire)
        #expect(Version(timestamp: 7, writer: 10) > version)
        #expect(Version(timestamp: 8, writer: 0) > Version(timestamp: 7, writer: 10))
    }

    @Test func theRingOfRingInfoUsesItsDensityWeightsAndN() throws {
        let info = WireRingInfo.with { info in
            info.ringEpoch = 4
            info.density = 40
            info.replicas = 2
            info.members = [
                WireMember.with { $0.address = "10.0.0.1:7501"; $0.weight = 1; $0.state = .up },
                WireMember.with { $0.address = "10.0.0.2:7501"; $0.weight = 2; $0.state = .suspect },
            ]
            info.plan = WireMigrationPlan.with { plan in
                plan.version = 3
                plan.pending = [WirePendingArc.with { $0.arc = WireArcRange.with { $0.first = 10; $0.last = 20 } }]
            }
        }
        let ring = ClusterRing(epoch: 9, info)
        let expected = try HashRing(members: [RingMember(address: "10.0.0.1:7501"), RingMember(address: "10.0.0.2:7501", weight: 2)],
                                    density: 40)
        #expect(ring.ring?.members == expected.members)
        #expect(try ring.ring?.preferenceList(forKey: Array("k".utf8), replicas: 2) == expected.preferenceList(forKey: Array("k".utf8), replicas: 2))
        #expect(ring.replicas == 2)
        #expect(ring.members.map(\.state) == [.up, .suspect])
        #expect(ring.plan.pendingArcs == [RingArc(first: 10, last: 20)])
        #expect(!ring.plan.isSettled)
        // Every arc of a two-member ring with N=2 is replicated by both members.
        let arcs = ring.arcsPerMember
        #expect(arcs.count == 2 && arcs["10.0.0.1:7501"] == arcs["10.0.0.2:7501"] && (arcs["10.0.0.1:7501"] ?? 0) > 0)
    }

    @Test func unsetDensityWeightAndReplicasTakeTheDefaults() throws {
        let info = WireRingInfo.with { $0.members = [WireMember.with { $0.address = "10.0.0.1:7501" }] }
        let ring = try HashRing(ringInfo: info)
        #expect(ring.density == HashRing.ketamaDensity)
        #expect(ring.members.map(\.weight) == [1])
        #expect(info.replicationFactor == 3)
        #expect(ClusterRing(epoch: 1, WireRingInfo()).ring == nil)
    }

    @Test func eventsKeepTheirTopicSequenceAndDetails() {
        let wire = WireEvent.with {
            $0.type = "lock_granted"
            $0.seq = 12
            $0.incarnation = 5
            $0.lock = WireLockDetails.with { $0.name = "n"; $0.owner = "o"; $0.token = 3 }
        }
        let event = ClusterEvent(topic: "lock", wire)
        #expect(event.topic == "lock" && event.type == "lock_granted" && event.sequence == 12 && event.incarnation == 5)
        #expect(event.details == .lock(ClusterEvent.LockChange(name: "n", owner: "o", token: 3, expiresUnixMicros: 0, reason: "")))
    }

    @Test func aFreeLockHasNoHolder() {
        let free = LockInfo(WireLockInfo.with { $0.name = "n"; $0.lastToken = 4 })
        #expect(free.holder == nil && free.lastToken == 4)
        let held = LockInfo(WireLockInfo.with { $0.name = "n"; $0.holder = WireLockGrant.with { $0.owner = "o"; $0.token = 5 } })
        #expect(held.holder?.owner == "o" && held.holder?.token == 5)
    }
}
