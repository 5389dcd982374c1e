import Ring
import RingProtocol

/// Computes the migration plan: which stretches of the ring change replica
/// set, and which node streams which of them to which. Pure: no clock, no I/O.
///
/// The model: every position has a *settled* replica set, the nodes known to
/// hold its data (the previous ring's preference list, or the old set of a
/// still-pending arc), and a *target* set, the current ring's preference list.
/// A position whose two sets differ (as sets) is pending until its transfers
/// are done. Replanning after another ring change starts from the settled
/// sets, never from a half-filled target, so several changes in a row
/// converge to the last ring without losing data.
///
/// Who sends: every live replica that loses the arc sends its copy to every
/// gaining replica, so each record a W-quorum of the old set held reaches a
/// W-quorum of the new set. When a losing replica is gone (removed, down) or
/// nothing is lost (the replica count grows), the live replicas that stay
/// send as well. An arc with no live sender is lost: it is dropped from the
/// plan and reported.
public enum MigrationPlanner {
    /// A stretch of positions with its settled and target sets.
    struct Piece: Equatable {
        var range: ClosedRange<UInt32>
        var old: [String]
        var new: [String]
    }

    /// The result of planning.
    public struct Outcome: Sendable {
        public var plan: WireMigrationPlan
        /// Arcs that had no live sender (their data is gone with their replicas).
        public var lost: [WirePendingArc]
    }

    /// Plans the move from `oldRing` (with `previous`'s pending arcs still
    /// settling) to `newRing`. `isLive` tells whether a member can send (in the
    /// membership and not down). Transfers identical to ones of `previous`
    /// keep their id and progress; new ones get ids from `version`.
    public static func plan(previous: WireMigrationPlan, oldRing: HashRing?, newRing: HashRing?, replicas: Int,
                            version: UInt64, ringEpoch: UInt64, isLive: (String) -> Bool) -> Outcome {
        var plan = WireMigrationPlan.with {
            $0.version = version
            $0.ringEpoch = ringEpoch
        }
        guard let oldRing, let newRing,
              let oldSegments = try? oldRing.segments(replicas: replicas),
              let newSegments = try? newRing.segments(replicas: replicas)
        else {
            // No data anywhere yet (the first join) or nowhere to put it (the last member left).
            return Outcome(plan: plan, lost: [])
        }
        let settled = overlay(oldSegments.map { (range: $0.range, set: $0.replicas.map(\.address)) }, with: previous.pending)
        let target = newSegments.map { (range: $0.range, set: $0.replicas.map(\.address)) }
        let pieces = intersect(settled, target).filter { Set($0.old) != Set($0.new) }
        var lost: [WirePendingArc] = []
        var byPair: [String: (from: String, to: String, arcs: [WireArcRange])] = [:]
        for piece in pieces {
            let arc = WirePendingArc.with {
                $0.arc = WireArcRange.with { $0.first = piece.range.lowerBound; $0.last = piece.range.upperBound }
                $0.oldReplicas = piece.old
                $0.newReplicas = piece.new
            }
            let pairs = transfers(old: piece.old, new: piece.new, isLive: isLive)
            guard !pairs.isEmpty else {
                lost.append(arc)
                continue
            }
            plan.pending.append(arc)
            for (from, to) in pairs {
                byPair["\(from) \(to)", default: (from, to, [])].arcs.append(arc.arc)
            }
        }
        var nextID = version << 16
        for key in byPair.keys.sorted() {
            let pair = byPair[key]!
            if var kept = previous.transfers.first(where: { $0.from == pair.from && $0.to == pair.to && $0.arcs == pair.arcs }) {
                kept.lastError = ""
                plan.transfers.append(kept)
                continue
            }
            nextID += 1
            plan.transfers.append(WireTransfer.with {
                $0.id = nextID
                $0.from = pair.from
                $0.to = pair.to
                $0.arcs = pair.arcs
            })
        }
        settle(&plan)
        return Outcome(plan: plan, lost: lost)
    }

    /// The (sender, receiver) pairs that move one arc from `old` to `new`.
    static func transfers(old: [String], new: [String], isLive: (String) -> Bool) -> [(String, String)] {
        let gained = new.filter { !old.contains($0) }
        let lost = old.filter { !new.contains($0) }
        let stayers = old.filter { new.contains($0) }
        let receivers = gained.isEmpty ? new : gained
        var senders = lost.filter(isLive)
        if senders.count < lost.count || lost.isEmpty {
            senders += stayers.filter(isLive)
        }
        var pairs: [(String, String)] = []
        for sender in senders {
            for receiver in receivers where receiver != sender {
                pairs.append((sender, receiver))
            }
        }
        return pairs
    }

    /// Marks a transfer done; arcs whose transfers are all done settle (leave
    /// the plan), and so do transfers whose arcs all settled. Returns whether
    /// the transfer was in the plan.
    @discardableResult
    public static func complete(transfer id: UInt64, in plan: inout WireMigrationPlan) -> Bool {
        guard let index = plan.transfers.firstIndex(where: { $0.id == id }) else { return false }
        plan.transfers[index].done = true
        plan.transfers[index].lastError = ""
        settle(&plan)
        return true
    }

    /// Drops arcs all of whose transfers are done, then transfers with no pending arc left.
    static func settle(_ plan: inout WireMigrationPlan) {
        var open: Set<WireArcRange> = []
        for transfer in plan.transfers where !transfer.done {
            open.formUnion(transfer.arcs)
        }
        plan.pending.removeAll { !open.contains($0.arc) }
        let pending = Set(plan.pending.map(\.arc))
        plan.transfers.removeAll { transfer in transfer.done && !transfer.arcs.contains { pending.contains($0) } }
    }

    // MARK: Piecewise sets (over RingPartition, the ring's arc diff)

    /// `base` (ascending, covering the ring) with the pending arcs' old sets laid over it.
    static func overlay(_ base: [(range: ClosedRange<UInt32>, set: [String])],
                        with pending: [WirePendingArc]) -> [(range: ClosedRange<UInt32>, set: [String])] {
        guard !pending.isEmpty else { return base }
        let overrides = pending.flatMap { arc in
            RingArc(first: arc.arc.first, last: arc.arc.last).ranges.map { (range: $0, set: Optional(arc.oldReplicas)) }
        }.sorted { $0.range.lowerBound < $1.range.lowerBound }
        // The overrides as a partition of the whole ring, gaps marked nil.
        var partition: [(range: ClosedRange<UInt32>, set: [String]?)] = []
        var lower: UInt32 = 0
        var reachedTop = false
        for override in overrides {
            if override.range.lowerBound > lower { partition.append((lower...(override.range.lowerBound - 1), nil)) }
            partition.append(override)
            if override.range.upperBound == .max { reachedTop = true; break }
            lower = override.range.upperBound + 1
        }
        if !reachedTop { partition.append((lower...UInt32.max, nil)) }
        var result: [(range: ClosedRange<UInt32>, set: [String])] = []
        for (range, baseSet, overrideSet) in RingPartition.refine(base.map { ($0.range, $0.set) }, partition.map { ($0.range, $0.set) }) {
            let set = overrideSet ?? baseSet
            if let last = result.last, last.set == set {
                result[result.count - 1].range = last.range.lowerBound...range.upperBound
            } else {
                result.append((range, set))
            }
        }
        return result
    }

    /// The common refinement of two ascending partitions of the ring, with both sets.
    static func intersect(_ a: [(range: ClosedRange<UInt32>, set: [String])],
                          _ b: [(range: ClosedRange<UInt32>, set: [String])]) -> [Piece] {
        var pieces: [Piece] = []
        for (range, old, new) in RingPartition.refine(a.map { ($0.range, $0.set) }, b.map { ($0.range, $0.set) }) {
            if let last = pieces.last, last.old == old, last.new == new {
                pieces[pieces.count - 1].range = last.range.lowerBound...range.upperBound
            } else {
                pieces.append(Piece(range: range, old: old, new: new))
            }
        }
        return pieces
    }
}
