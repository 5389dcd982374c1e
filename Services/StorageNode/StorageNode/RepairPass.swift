import Ring

/// One anti-entropy pass's walk, with no I/O: the arcs to compare, each with
/// the peers to compare it with, one comparison at a time; what the
/// comparisons found; and the peers that failed, left out for the rest of the
/// pass. A comparison that pulled rows queues the peers compared on that arc
/// before it once more (the rows may be missing there too), so one pass leaves
/// every live replica of an arc identical. The shell rebuilds the work when
/// the ring or plan changed; arcs done stay done.
struct RepairPass {
    /// The arcs a pass compares, with the peers of each, and how many segments were skipped as pending migration.
    typealias Plan = (arcs: [(range: ClosedRange<UInt32>, peers: [String])], skipped: Int)

    /// An arc being compared.
    struct Arc: Equatable {
        let range: ClosedRange<UInt32>
        /// Peers still to compare it with, in order.
        var queue: [String]
        var compared: [String] = []
        var recompared: Set<String> = []
        var differed = false
    }

    /// What the next step is.
    enum Step: Equatable {
        /// No arc is left: the pass is over.
        case finished
        /// An arc had no peer left and was counted; step again.
        case arcClosed
        /// The current arc has a peer to compare: ``takePeer()``.
        case peerDue
    }

    private(set) var figures = AntiEntropy.Figures()
    private(set) var work: [Arc] = []
    private(set) var current: Arc?
    private(set) var done: Set<ClosedRange<UInt32>> = []
    /// Peers that failed in this pass: not asked again until the next one.
    private(set) var unreachable: Set<String> = []
    /// The ring epoch and plan version the work was built from.
    private(set) var builtAt: (ringEpoch: UInt64, planVersion: UInt64) = (0, 0)

    /// Between two arcs: where the shell checks whether the ring moved on.
    var isBetweenArcs: Bool { current == nil }

    /// The work from `plan`, made at `builtAt`, without the arcs done already.
    mutating func rebuild(_ plan: Plan, builtAt: (ringEpoch: UInt64, planVersion: UInt64)) {
        self.builtAt = builtAt
        work = plan.arcs.filter { !done.contains($0.range) }.map { Arc(range: $0.range, queue: $0.peers) }
        figures.skippedPending = max(figures.skippedPending, plan.skipped)
    }

    /// No ring to build the work from: nothing is left to compare.
    mutating func clearWork() {
        work = []
    }

    /// Moves to the next arc when none is current, or closes the current one when it has no peer left.
    mutating func advance() -> Step {
        if current == nil {
            guard !work.isEmpty else { return .finished }
            current = work.removeFirst()
        }
        guard let arc = current, arc.queue.isEmpty else { return .peerDue }
        done.insert(arc.range)
        if !arc.compared.isEmpty { figures.arcsCompared += 1 }
        if arc.differed { figures.arcsDiffering += 1 }
        current = nil
        return .arcClosed
    }

    /// Takes the current arc's next peer off its queue: the comparison to make, or `nil`
    /// when that peer failed earlier in the pass (skip it and step again).
    mutating func takePeer() -> (range: ClosedRange<UInt32>, peer: String)? {
        guard var arc = current, !arc.queue.isEmpty else { return nil }
        let peer = arc.queue.removeFirst()
        current = arc
        return unreachable.contains(peer) ? nil : (arc.range, peer)
    }

    /// What comparing the current arc with `peer` exchanged, and whether it failed.
    /// Returns `false` (nothing recorded) when no arc is current.
    mutating func compared(_ peer: String, _ tally: AntiEntropy.Tally, failed: Bool) -> Bool {
        guard var arc = current else { return false }
        figures.rowsPushed += tally.pushed
        figures.rowsPulled += tally.pulled
        if failed {
            figures.failures += 1
            unreachable.insert(peer)
        } else {
            arc.compared.append(peer)
        }
        if tally.differing { arc.differed = true }
        // Rows taken from this peer may be missing on the peers compared before it.
        if tally.pulled > 0 {
            for earlier in arc.compared where earlier != peer && !arc.recompared.contains(earlier) && !arc.queue.contains(earlier) {
                arc.queue.append(earlier)
                arc.recompared.insert(earlier)
            }
        }
        current = arc
        return true
    }

    /// The arcs a pass of `address` compares, and with which peers: the segments it
    /// replicates, without those pending migration (counted as skipped) and those
    /// without a live peer; in periodic passes only those where it is the live replica
    /// with the lowest address. Neighbouring segments with the same replica set are
    /// joined into one arc of at most `maxLength` positions (fewer round trips; a
    /// bounded scan per digest).
    static func arcs(of segments: [HashRing.Segment], for address: String, periodic: Bool, maxLength: UInt64,
                     live: (String) -> Bool, pending: (ClosedRange<UInt32>) -> Bool) -> Plan {
        var arcs: [(range: ClosedRange<UInt32>, peers: [String])] = []
        var skipped = 0
        var previousSet: Set<String>?
        for segment in segments {
            let replicas = segment.replicas.map(\.address)
            guard replicas.contains(address) else {
                previousSet = nil
                continue
            }
            if pending(segment.range) {
                skipped += 1
                previousSet = nil
                continue
            }
            let peers = replicas.filter { $0 != address && live($0) }.sorted()
            guard let lowest = peers.first, !(periodic && lowest < address) else {
                previousSet = nil
                continue
            }
            let set = Set(replicas)
            if let last = arcs.last, previousSet == set, last.peers == peers,
               UInt64(last.range.upperBound) + 1 == UInt64(segment.range.lowerBound),
               UInt64(segment.range.upperBound) - UInt64(last.range.lowerBound) + 1 <= maxLength {
                arcs[arcs.count - 1].range = last.range.lowerBound...segment.range.upperBound
            } else {
                arcs.append((segment.range, peers))
            }
            previousSet = set
        }
        return (arcs, skipped)
    }
}
