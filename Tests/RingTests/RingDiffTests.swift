import Testing

@testable import Ring
import TestKit

@Suite("Ring diff")
struct RingDiffTests {
    /// A random membership: up to 12 members from a pool of 16 addresses, weights 1...3.
    private static func randomMembers(using generator: inout SeededGenerator, maximum: Int = 12) throws -> [RingMember] {
        let count = Int.random(in: 1...maximum, using: &generator)
        let ports = Array(7501...7516).shuffled(using: &generator).prefix(count)
        return try ports.map { try RingMember(host: "10.0.0.1", port: $0, weight: Int.random(in: 1...3, using: &generator)) }
    }

    /// Checks that `diff` is exact at `position`: the position is on an arc iff its list changed,
    /// and the arc carries the old and new lists.
    private static func expectExact(
        _ diff: RingDiff, old: HashRing, new: HashRing, position: UInt32, replicas: Int
    ) throws {
        let before = try old.preferenceList(forPosition: position, replicas: replicas)
        let after = try new.preferenceList(forPosition: position, replicas: replicas)
        let changed = before.map(\.address) != after.map(\.address)
        let change = diff.change(containing: position)
        #expect(changed == (change != nil), "position \(position): changed \(changed)")
        if let change {
            #expect(change.oldReplicas == before)
            #expect(change.newReplicas == after)
        }
        // Cross-check the lookup against a linear scan of the arcs.
        #expect(diff.changes.filter { $0.arc.contains(position) }.count == (changed ? 1 : 0))
    }

    /// The structural promises: ring order, no overlap, neighbours with equal lists merged.
    private static func expectWellFormed(_ diff: RingDiff) {
        let changes = diff.changes
        for (index, change) in changes.enumerated() where change.arc.wraps {
            #expect(index == 0, "only the first arc may wrap")
        }
        let plain = changes.filter { !$0.arc.wraps }
        for (left, right) in zip(plain, plain.dropFirst()) {
            #expect(left.arc.last < right.arc.first, "arcs ascend without overlap")
        }
        if let first = changes.first, first.arc.wraps, let lastPlain = plain.last {
            #expect(lastPlain.arc.last < first.arc.first && plain[0].arc.first > first.arc.last)
        }
        // Touching arcs (including across the top) must differ in their lists, or they would be one arc.
        for index in changes.indices where changes.count > 1 {
            let left = changes[index]
            let right = changes[(index + 1) % changes.count]
            if left.arc.last &+ 1 == right.arc.first {
                #expect(left.oldReplicas != right.oldReplicas || left.newReplicas != right.newReplicas)
            }
        }
        #expect(diff.changedPositionCount <= 1 << 32)
    }

    @Test("diff is exact on random rings at boundaries and random positions", arguments: [1, 2, 3])
    func exactOnRandomRings(replicas: Int) throws {
        var generator = SeededGenerator(seed: 0xD1FF + UInt64(replicas))
        var wrappingArcs = 0
        var nonEmptyDiffs = 0
        for trial in 0..<40 {
            let oldMembers = try Self.randomMembers(using: &generator)
            var newMembers = oldMembers
            switch trial % 4 {
            case 0:  // join
                let port = 7600 + trial
                newMembers.append(try RingMember(host: "10.0.0.1", port: port))
            case 1:  // leave (when something would remain)
                if newMembers.count > 1 { newMembers.remove(at: Int.random(in: 0..<newMembers.count, using: &generator)) }
            case 2:  // weight change
                let index = Int.random(in: 0..<newMembers.count, using: &generator)
                let member = newMembers[index]
                newMembers[index] = try RingMember(address: member.address, weight: member.weight % 3 + 1)
            default:  // unrelated membership
                newMembers = try Self.randomMembers(using: &generator)
            }
            let density = Int.random(in: 1...6, using: &generator)
            let old = try HashRing(members: oldMembers, density: density)
            let new = try HashRing(members: newMembers, density: density)
            let diff = try old.diff(to: new, replicas: replicas)
            #expect(diff.replicas == replicas)
            Self.expectWellFormed(diff)
            if !diff.isEmpty { nonEmptyDiffs += 1 }
            wrappingArcs += diff.changes.filter(\.arc.wraps).count

            var probes: [UInt32] = [0, 1, .max, .max - 1]
            for point in old.pointPositions + new.pointPositions {
                probes += [point, point &+ 1, point &- 1]
            }
            for change in diff.changes {
                probes += [change.arc.first, change.arc.last, change.arc.first &- 1, change.arc.last &+ 1]
            }
            for _ in 0..<300 {
                probes.append(UInt32.random(in: 0...UInt32.max, using: &generator))
            }
            for position in probes {
                try Self.expectExact(diff, old: old, new: new, position: position, replicas: replicas)
            }
        }
        #expect(nonEmptyDiffs >= 30)
        #expect(wrappingArcs > 0, "the trials include arcs that wrap past the top of the ring")
    }

    @Test("a key's preference list changed iff its position is on a returned arc", arguments: [1, 2, 3])
    func exactForKeys(replicas: Int) throws {
        let old = try HashRing(members: localMembers(20))
        let new = try HashRing(members: localMembers(21))
        let diff = try old.diff(to: new, replicas: replicas)
        var generator = SeededGenerator(seed: 6)
        var changedKeys = 0
        for key in randomKeys(20_000, using: &generator) {
            let changed = try old.preferenceList(forKey: key, replicas: replicas) != new.preferenceList(forKey: key, replicas: replicas)
            if changed { changedKeys += 1 }
            #expect(changed == (diff.change(containing: try HashRing.position(forKey: key)) != nil))
        }
        #expect(changedKeys > 0)
        // Every change of a join hands data to the joiner and nothing else.
        for change in diff.changes {
            #expect(change.gainedReplicas.map(\.address) == ["127.0.0.1:7521"])
            #expect(change.lostReplicas.count == (change.oldReplicas.count == replicas ? 1 : 0))
        }
    }

    @Test("a ring diffed with itself, or an equal ring, is empty")
    func unchanged() throws {
        let members = try localMembers(5)
        let ring = try HashRing(members: members)
        #expect(try ring.diff(to: ring, replicas: 3).isEmpty)
        #expect(try ring.diff(to: HashRing(members: members.reversed()), replicas: 2).isEmpty)
        #expect(try ring == HashRing(members: members.reversed()))
        #expect(try ring != HashRing(members: members, density: 41))
        #expect(try ring != HashRing(members: [RingMember(address: members[0].address, weight: 2)] + members.dropFirst()))
    }

    @Test("disjoint memberships change every position")
    func disjoint() throws {
        let old = try HashRing(members: localMembers(3))
        let new = try HashRing(members: localMembers(3, firstPort: 8501))
        let diff = try old.diff(to: new, replicas: 2)
        #expect(diff.changedPositionCount == 1 << 32)
        for change in diff.changes {
            #expect(change.gainedReplicas.count == 2 && change.lostReplicas.count == 2)
        }
    }

    @Test("one member replaced by another on a one-member ring is one whole-ring arc")
    func wholeRing() throws {
        let old = try HashRing(members: [RingMember(address: "127.0.0.1:7501")])
        let new = try HashRing(members: [RingMember(address: "127.0.0.1:7502")])
        let diff = try old.diff(to: new, replicas: 3)
        #expect(diff.changes.count == 1)
        #expect(diff.changes.first?.arc == .wholeRing)
        #expect(diff.changes.first?.oldReplicas.map(\.address) == ["127.0.0.1:7501"])
        #expect(diff.changes.first?.newReplicas.map(\.address) == ["127.0.0.1:7502"])
    }

    @Test("a weight change is reported with the new ring's member")
    func weightChange() throws {
        let members = try localMembers(3)
        let heavier = try RingMember(address: members[0].address, weight: 2)
        let new = try HashRing(members: [heavier, members[1], members[2]])
        let diff = try HashRing(members: members).diff(to: new, replicas: 1)
        #expect(!diff.isEmpty)
        for change in diff.changes {
            #expect(change.newReplicas == [heavier])
        }
    }

    @Test("arcs: containment, length and range form")
    func arcs() {
        let plain = RingArc(first: 10, last: 20)
        #expect(!plain.wraps && plain.length == 11 && plain.ranges == [10...20])
        #expect(plain.contains(10) && plain.contains(20) && !plain.contains(9) && !plain.contains(21))
        let wrapping = RingArc(first: .max - 1, last: 1)
        #expect(wrapping.wraps && wrapping.length == 4 && wrapping.ranges == [0...1, (.max - 1)...UInt32.max])
        #expect(wrapping.contains(.max) && wrapping.contains(0) && wrapping.contains(1) && !wrapping.contains(2))
        #expect(RingArc.wholeRing.length == 1 << 32 && RingArc.wholeRing.contains(12345))
    }
}
