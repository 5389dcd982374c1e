import Ring
import RingProtocol
import RingstoreClient
import Testing

@Suite struct RingRouterTests {
    static let addresses = ["127.0.0.1:7501", "127.0.0.1:7502", "127.0.0.1:7503", "127.0.0.1:7504", "127.0.0.1:7505"]

    private func ringInfo(states: [String: WireMemberState] = [:], replicas: UInt32 = 3) -> WireRingInfo {
        WireRingInfo.with { info in
            info.density = 40
            info.replicas = replicas
            info.members = Self.addresses.map { address in
                WireMember.with { $0.address = address; $0.weight = 1; $0.state = states[address] ?? .up }
            }
        }
    }

    private func ring() throws -> HashRing {
        try HashRing(members: Self.addresses.map { try RingMember(address: $0) })
    }

    @Test(arguments: ["a", "user:42", "\u{00e9}t\u{00e9}", "k-9999"])
    func candidatesStartWithThePreferenceList(key: String) throws {
        let router = try RingRouter(ringInfo: ringInfo(), epoch: 7)
        let candidates = try router.candidates(forKey: Array(key.utf8), limit: 5)
        let expected = try ring().preferenceList(forKey: Array(key.utf8), replicas: 5).map(\.address)
        #expect(candidates == expected)
        #expect(router.epoch == 7)
        #expect(router.replicas == 3)
        #expect(router.isFromPlacement)
    }

    @Test func unreachableNodesMoveToTheEnd() throws {
        let router = try RingRouter(ringInfo: ringInfo(), epoch: 1)
        let key = Array("some key".utf8)
        let order = try ring().preferenceList(forKey: key, replicas: 5).map(\.address)
        let candidates = try router.candidates(forKey: key, unreachable: [order[0], order[2]], limit: 5)
        #expect(candidates == [order[1], order[3], order[4], order[0], order[2]])
    }

    @Test func suspectAndDownMembersMoveToTheEnd() throws {
        let key = Array("another key".utf8)
        let order = try ring().preferenceList(forKey: key, replicas: 5).map(\.address)
        let router = try RingRouter(ringInfo: ringInfo(states: [order[0]: .down, order[1]: .suspect]), epoch: 1)
        #expect(router.unhealthyMembers == [order[0], order[1]])
        #expect(try router.candidates(forKey: key, limit: 5) == [order[2], order[3], order[4], order[0], order[1]])
    }

    @Test func theLimitCapsTheCandidates() throws {
        let router = try RingRouter(ringInfo: ringInfo(), epoch: 1)
        #expect(try router.candidates(forKey: Array("k".utf8), limit: 2).count == 2)
        #expect(try router.candidates(forKey: Array("k".utf8), limit: 50).count == 5)
    }

    @Test func aHealthyNodeIsFoundBeyondTheNearbyOnes() throws {
        let key = Array("far".utf8)
        let order = try ring().preferenceList(forKey: key, replicas: 5).map(\.address)
        let router = try RingRouter(ringInfo: ringInfo(replicas: 1), epoch: 1)
        let candidates = try router.candidates(forKey: key, unreachable: Set(order.prefix(4)), limit: 2)
        #expect(candidates == [order[4], order[0]])
    }

    @Test func anEmptyKeyHasNoCandidates() throws {
        let router = try RingRouter(ringInfo: ringInfo(), epoch: 1)
        #expect(throws: RingError.emptyKey) { try router.candidates(forKey: [UInt8]()) }
    }

    @Test func anEmptyRingIsRefused() {
        #expect(throws: RingError.emptyMembership) { try RingRouter(ringInfo: WireRingInfo(), epoch: 1) }
    }

    @Test func theStaticNodeListSkipsMalformedAndDuplicateAddresses() throws {
        let router = try RingRouter(nodes: ["127.0.0.1:7501", "tcp://127.0.0.1:7502", "nonsense", "127.0.0.1:7501", "h:0"])
        #expect(router.ring.members.map(\.address) == ["127.0.0.1:7501", "127.0.0.1:7502"])
        #expect(!router.isFromPlacement)
        #expect(router.epoch == 0)
        #expect(throws: RingError.emptyMembership) { try RingRouter(nodes: ["nonsense"]) }
    }
}
