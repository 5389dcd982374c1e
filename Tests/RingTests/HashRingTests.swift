import Testing

@testable import Ring
import TestKit

@Suite("Ring placement")
struct HashRingTests {
    @Test("preference lists are distinct members, primary first, capped at the membership", arguments: [1, 2, 3, 5, 8])
    func preferenceLists(replicas: Int) throws {
        let ring = try HashRing(members: localMembers(5))
        var generator = SeededGenerator(seed: 1)
        var indices: [Int] = []
        for key in randomKeys(500, using: &generator) {
            let list = try ring.preferenceList(forKey: key, replicas: replicas)
            #expect(list.count == min(replicas, 5))
            #expect(Set(list.map(\.address)).count == list.count)
            #expect(list[0] == (try ring.owner(forKey: key)))
            try ring.preferenceIndices(forPosition: HashRing.position(forKey: key), replicas: replicas, into: &indices)
            #expect(indices.map { ring.members[$0] } == list)
        }
    }

    @Test("the preference list follows the points clockwise, wrapping past the top")
    func clockwiseWalk() throws {
        let ring = try HashRing(members: localMembers(4), density: 2)
        let points = ring.pointPositions
        // The owner of each point position is the owner of every position down to the previous point.
        for (index, point) in points.enumerated() {
            let owner = ring.owner(forPosition: point)
            let previous = index == 0 ? points[points.count - 1] : points[index - 1]
            if previous != point {
                #expect(ring.owner(forPosition: previous &+ 1) == owner)
            }
        }
        // Past the last point, positions wrap to the first point's owner.
        #expect(ring.owner(forPosition: .max) == ring.owner(forPosition: points[0]))
        #expect(ring.owner(forPosition: 0) == ring.owner(forPosition: points[0]))
        // Long preference lists from any position hold every member exactly once.
        for position in [0, points[0], points[points.count - 1], .max] as [UInt32] {
            #expect(try Set(ring.addresses(forPosition: position, replicas: 4)).count == 4)
        }
    }

    @Test("point lookup agrees with a linear scan at every point and its neighbours", arguments: [(1, 1), (3, 1), (10, 40), (7, 512)])
    func pointLookup(memberCount: Int, density: Int) throws {
        let ring = try HashRing(members: localMembers(memberCount), density: density)
        let points = ring.pointPositions
        func linear(_ position: UInt32) -> Int {
            points.firstIndex { $0 >= position } ?? 0
        }
        var probes: [UInt32] = [0, 1, .max - 1, .max]
        for point in points.prefix(2_000) + points.suffix(200) {
            probes += [point &- 1, point, point &+ 1]
        }
        var generator = SeededGenerator(seed: UInt64(memberCount * density))
        for _ in 0..<2_000 {
            probes.append(.random(in: 0 ... .max, using: &generator))
        }
        for position in probes {
            #expect(ring.firstPoint(atOrAfter: position) == linear(position), "position \(position)")
        }
    }

    @Test("points that tie are ordered by member address")
    func ties() throws {
        // At density 4096 these two members both have a point at 944943148 (found by search).
        let tie: UInt32 = 944_943_148
        let low = try RingMember(address: "127.0.0.1:7501")
        let high = try RingMember(address: "127.0.0.1:7524")
        for members in [[low, high], [high, low]] {
            let ring = try HashRing(members: members, density: 4096)
            #expect(ring.pointPositions.filter { $0 == tie }.count == 2)
            #expect(ring.owner(forPosition: tie) == low)
            #expect(try ring.preferenceList(forPosition: tie, replicas: 2) == [low, high])
            let tiedPoint = ring.firstPoint(atOrAfter: tie)
            #expect(ring.pointPositions[tiedPoint] == tie && ring.pointPositions[tiedPoint + 1] == tie)
            #expect(ring.pointMembers[tiedPoint] < ring.pointMembers[tiedPoint + 1])
        }
    }

    @Test("the ring does not depend on the order members are given in")
    func orderIndependent() throws {
        let members = try localMembers(6)
        let forward = try HashRing(members: members)
        let backward = try HashRing(members: members.reversed())
        #expect(forward.members == backward.members)
        #expect(forward.pointPositions == backward.pointPositions)
        var generator = SeededGenerator(seed: 2)
        for key in randomKeys(200, using: &generator) {
            #expect(try forward.preferenceList(forKey: key, replicas: 3) == backward.preferenceList(forKey: key, replicas: 3))
        }
    }

    @Test("balance: 10 equal members at density 512 load within 5% of the mean")
    func balance() throws {
        let ring = try HashRing(members: localMembers(10), density: 512)
        let report = ring.loadReport()
        #expect(report.entries.count == 10)
        #expect(abs(report.entries.map(\.fraction).reduce(0, +) - 1) < 1e-9)
        #expect(report.entries.map(\.positions).reduce(0, +) == 1 << 32)
        #expect(report.maxOverMean <= 1.05, "max/mean \(report.maxOverMean)")
        #expect(report.maxOverMean >= 1)
    }

    @Test("load fractions agree with where keys land")
    func loadMatchesKeys() throws {
        let ring = try HashRing(members: localMembers(4))
        let report = ring.loadReport()
        var generator = SeededGenerator(seed: 3)
        var counts: [String: Int] = [:]
        let keys = randomKeys(40_000, using: &generator)
        for key in keys {
            counts[try ring.owner(forKey: key).address, default: 0] += 1
        }
        for entry in report.entries {
            let observed = Double(counts[entry.member.address, default: 0]) / Double(keys.count)
            // Sampling error of a fraction near 0.25 over 40,000 keys is about 0.002.
            #expect(abs(observed - entry.fraction) < 0.012, "\(entry.member): \(observed) vs \(entry.fraction)")
        }
    }

    @Test("a member of weight 2 owns about twice the arc of a member of weight 1")
    func weight() throws {
        let heavy = try RingMember(address: "127.0.0.1:7600", weight: 2)
        let ring = try HashRing(members: localMembers(5) + [heavy], density: 160)
        #expect(ring.pointCount == 4 * 160 * 7)
        let report = ring.loadReport()
        let heavyFraction = try #require(report.entries.first { $0.member == heavy }).fraction
        let lightFractions = report.entries.filter { $0.member != heavy }.map(\.fraction)
        let lightMean = lightFractions.reduce(0, +) / Double(lightFractions.count)
        #expect((1.8...2.2).contains(heavyFraction / lightMean), "ratio \(heavyFraction / lightMean)")
        #expect(abs(report.entries.first { $0.member == heavy }!.expectedFraction - 2.0 / 7.0) < 1e-12)
        #expect(report.maxOverExpected < 1.15, "max/expected \(report.maxOverExpected)")
    }

    @Test("adding a member moves keys only to it, about 1/(n+1) of them", arguments: [1, 2, 3])
    func joinMovesMinimally(replicas: Int) throws {
        let before = try HashRing(members: localMembers(10))
        let joiner = try RingMember(address: "127.0.0.1:7600")
        let after = try HashRing(members: before.members + [joiner])
        var generator = SeededGenerator(seed: 4)
        let keys = randomKeys(20_000, using: &generator)
        var moved = 0
        for key in keys {
            let old = try before.preferenceList(forKey: key, replicas: replicas).map(\.address)
            let new = try after.preferenceList(forKey: key, replicas: replicas).map(\.address)
            if old[0] != new[0] {
                moved += 1
                #expect(new[0] == joiner.address)
            }
            // Apart from the joiner, the list is the old list, cut to length: nobody else gains a key.
            let others = new.filter { $0 != joiner.address }
            #expect(Array(old.prefix(others.count)) == others)
        }
        let movedFraction = Double(moved) / Double(keys.count)
        let joinerShare = try #require(after.loadReport().entries.first { $0.member == joiner }).fraction
        #expect(abs(movedFraction - joinerShare) < 0.01, "moved \(movedFraction), joiner owns \(joinerShare)")
        // 1/11 ≈ 0.091; 160 points per member keep a member's share within about ±30% of that.
        #expect((0.064...0.118).contains(movedFraction), "moved \(movedFraction)")
    }

    @Test("removing a member moves only its keys")
    func leaveMovesOnlyItsKeys() throws {
        let members = try localMembers(8)
        let before = try HashRing(members: members)
        let leaver = members[3]
        let after = try HashRing(members: members.filter { $0 != leaver })
        var generator = SeededGenerator(seed: 5)
        let keys = randomKeys(20_000, using: &generator)
        var moved = 0
        for key in keys {
            let old = try before.preferenceList(forKey: key, replicas: 3).map(\.address)
            let new = try after.preferenceList(forKey: key, replicas: 3).map(\.address)
            if old[0] != new[0] {
                moved += 1
                #expect(old[0] == leaver.address)
            }
            // The surviving replicas keep their order; one newcomer at most takes the freed place.
            let survivors = old.filter { $0 != leaver.address }
            #expect(Array(new.prefix(survivors.count)) == survivors)
        }
        let leaverShare = try #require(before.loadReport().entries.first { $0.member == leaver }).fraction
        #expect(abs(Double(moved) / Double(keys.count) - leaverShare) < 0.01)
    }

    @Test("member lookup by address")
    func memberIndex() throws {
        let ring = try HashRing(members: localMembers(7).reversed())
        for (index, member) in ring.members.enumerated() {
            #expect(ring.memberIndex(ofAddress: member.address) == index)
        }
        #expect(ring.memberIndex(ofAddress: "127.0.0.1:9999") == nil)
        #expect(ring.memberIndex(ofAddress: "") == nil)
    }
}
