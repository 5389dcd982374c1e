import Ring
@testable import StorageNode
import Testing

/// One anti-entropy pass: which arcs it compares with which peers, and its walk over them.
@Suite struct RepairPassTests {
    typealias Tally = AntiEntropy.Tally

    /// A pass built from arcs given as (first position, peers), each ten positions long.
    static func pass(_ arcs: [(UInt32, [String])], skipped: Int = 0) -> RepairPass {
        var pass = RepairPass()
        pass.rebuild((arcs.map { (range: $0.0...($0.0 + 9), peers: $0.1) }, skipped), builtAt: (1, 1))
        return pass
    }

    /// Walks the pass to its end, answering every comparison with `answer`; returns the comparisons made.
    static func walk(_ pass: inout RepairPass, answer: (ClosedRange<UInt32>, String) -> (Tally, failed: Bool))
        -> [(range: ClosedRange<UInt32>, peer: String)] {
        var made: [(range: ClosedRange<UInt32>, peer: String)] = []
        while true {
            switch pass.advance() {
            case .finished: return made
            case .arcClosed: continue
            case .peerDue: break
            }
            guard let next = pass.takePeer() else { continue }
            made.append(next)
            let (tally, failed) = answer(next.range, next.peer)
            #expect(pass.compared(next.peer, tally, failed: failed) == true)
        }
    }

    @Test func aPassJoinsNeighbouringSegmentsOfOneReplicaSetAndCoversWhatTheNodeReplicates() throws {
        let addresses = (1...6).map { "10.0.0.\($0):7501" }
        let ring = try HashRing(members: addresses.map { try RingMember(address: $0) })
        let segments = try ring.segments(replicas: 3)
        let me = addresses[2]
        let maxLength: UInt64 = 1 << 26
        let full = RepairPass.arcs(of: segments, for: me, periodic: false, maxLength: maxLength, live: { _ in true }, pending: { _ in false })
        let mine = segments.filter { $0.replicas.contains { $0.address == me } }
        #expect(full.skipped == 0)
        #expect(full.arcs.count < mine.count)
        // The arcs cover exactly the segments this node replicates, each within one replica set.
        var covered: UInt64 = 0
        for arc in full.arcs {
            covered += UInt64(arc.range.upperBound) - UInt64(arc.range.lowerBound) + 1
            #expect(UInt64(arc.range.upperBound) - UInt64(arc.range.lowerBound) + 1 <= maxLength || mine.contains { $0.range == arc.range })
            let inside = mine.filter { arc.range.contains($0.range.lowerBound) }
            #expect(inside.first?.range.lowerBound == arc.range.lowerBound && inside.last?.range.upperBound == arc.range.upperBound)
            for segment in inside {
                #expect(Set(segment.replicas.map(\.address)) == Set(arc.peers + [me]))
            }
        }
        #expect(covered == mine.reduce(0) { $0 + UInt64($1.range.upperBound) - UInt64($1.range.lowerBound) + 1 })
        // Periodic: only the arcs where this node has the lowest live address.
        let periodic = RepairPass.arcs(of: segments, for: me, periodic: true, maxLength: maxLength, live: { _ in true }, pending: { _ in false })
        #expect(periodic.arcs.allSatisfy { $0.peers.allSatisfy { me < $0 } })
        #expect(periodic.arcs.count < full.arcs.count)
        // A down peer is left out; pending segments are skipped and counted.
        let down = addresses[3]
        let withoutDown = RepairPass.arcs(of: segments, for: me, periodic: false, maxLength: maxLength, live: { $0 != down }, pending: { _ in false })
        #expect(withoutDown.arcs.allSatisfy { !$0.peers.contains(down) })
        let pendingRange = mine[0].range
        let withPending = RepairPass.arcs(of: segments, for: me, periodic: false, maxLength: maxLength, live: { _ in true },
                                           pending: { $0.overlaps(pendingRange) })
        #expect(withPending.skipped == 1)
        #expect(withPending.arcs.allSatisfy { !$0.range.overlaps(pendingRange) })
    }

    @Test func aPassComparesEveryArcWithEachPeerInTurnAndCountsWhatItFound() {
        var pass = Self.pass([(0, ["a", "b"]), (10, ["a"]), (20, [])])
        #expect(pass.isBetweenArcs)
        let made = Self.walk(&pass) { range, peer in
            (range.lowerBound == 0 && peer == "b" ? Tally(pushed: 2, pulled: 0, differing: true) : Tally(), false)
        }
        #expect(made.map(\.peer) == ["a", "b", "a"])
        #expect(made.map(\.range.lowerBound) == [0, 0, 10])
        // The arc with no peer is done but not counted as compared.
        #expect(pass.figures == AntiEntropy.Figures(arcsCompared: 2, arcsDiffering: 1, rowsPushed: 2))
        #expect(pass.done == [0...9, 10...19, 20...29])
        #expect(pass.isBetweenArcs && pass.advance() == .finished)
    }

    @Test func rowsPulledFromAPeerAreComparedOnceMoreWithThePeersBeforeIt() {
        var pass = Self.pass([(0, ["a", "b", "c"])])
        let made = Self.walk(&pass) { _, peer in
            (peer == "a" ? Tally() : Tally(pushed: 0, pulled: 3, differing: true), false)
        }
        // b pulled: a again; c pulled: b again (a is queued already); b pulled once
        // more: c again; then every earlier peer was compared twice and it stops.
        #expect(made.map(\.peer) == ["a", "b", "c", "a", "b", "c"])
        #expect(pass.figures.rowsPulled == 12 && pass.figures.arcsCompared == 1 && pass.figures.arcsDiffering == 1)
    }

    @Test func aPeerThatFailedIsLeftOutForTheRestOfThePass() {
        var pass = Self.pass([(0, ["a", "b"]), (10, ["a", "b"]), (20, ["a"])])
        let made = Self.walk(&pass) { _, peer in (Tally(), peer == "a") }
        #expect(made.map(\.peer) == ["a", "b", "b"])
        #expect(pass.unreachable == ["a"])
        // The last arc had only the failed peer: done, but not compared.
        #expect(pass.figures.failures == 1 && pass.figures.arcsCompared == 2)
        #expect(pass.done.count == 3)
    }

    @Test func aRebuildKeepsWhatIsDoneAndTheMostSkipped() throws {
        var pass = Self.pass([(0, ["a"]), (10, ["a"])], skipped: 2)
        #expect(pass.advance() == .peerDue)
        let taken = pass.takePeer()
        let first = try #require(taken)
        #expect(pass.compared(first.peer, Tally(), failed: false) == true)
        #expect(pass.advance() == .arcClosed)
        pass.rebuild(([(range: 0...9, peers: ["a"]), (range: 10...19, peers: ["b"]), (range: 30...39, peers: ["b"])], 1), builtAt: (2, 5))
        #expect(pass.builtAt == (2, 5))
        #expect(pass.work.map(\.range) == [10...19, 30...39])
        #expect(pass.work.first?.queue == ["b"])
        #expect(pass.figures.skippedPending == 2)
        pass.clearWork()
        #expect(pass.advance() == .finished)
    }

    @Test func anAnswerWithNoArcCurrentIsIgnored() {
        var pass = Self.pass([(0, ["a"])])
        #expect(pass.compared("a", Tally(pushed: 5, pulled: 5, differing: true), failed: true) == false)
        #expect(pass.figures == AntiEntropy.Figures() && pass.unreachable.isEmpty)
        #expect(pass.takePeer() == nil)
    }
}
