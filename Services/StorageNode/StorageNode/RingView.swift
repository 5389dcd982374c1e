import Ring
import RingProtocol

/// The ring a node routes by, built from placement's ring info (with its
/// migration plan), plus what it knows of each member's liveness.
struct RingView {
    let info: WireRingInfo
    let ring: HashRing?
    var states: [String: WireMemberState]
    /// The plan's pending arcs as ascending non-wrapping ranges, for lookups.
    let pending: [(range: ClosedRange<UInt32>, arc: WirePendingArc)]

    init(info: WireRingInfo) {
        self.info = info
        states = Dictionary(info.members.map { ($0.address, $0.state) }, uniquingKeysWith: { _, last in last })
        ring = try? HashRing(ringInfo: info)
        pending = info.plan.pending.flatMap { arc in
            RingArc(first: arc.arc.first, last: arc.arc.last).ranges.map { (range: $0, arc: arc) }
        }.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    var replicas: Int { info.replicationFactor }
    var planVersion: UInt64 { info.plan.version }

    /// The first `n` distinct members clockwise from the key's position.
    func preferenceList(forKey key: [UInt8], replicas n: Int) -> [String] {
        guard let ring, let list = try? ring.preferenceList(forKey: key, replicas: n) else { return [] }
        return list.map(\.address)
    }

    /// Where a key's reads and writes go: its preference list and, while the
    /// key's arc is moving, the arc's old replicas too. Each group must reach
    /// the quorum on its own; `replicas` is their union, new replicas first.
    /// Requests with a non-default N see no plan (it is computed for the
    /// cluster's N).
    func placement(forKey key: [UInt8], replicas n: Int) -> (replicas: [String], groups: [[String]]) {
        let list = preferenceList(forKey: key, replicas: n)
        guard n == replicas, !pending.isEmpty, let position = try? HashRing.position(forKey: key),
              let moving = pendingArc(containing: position)
        else { return (list, [list]) }
        let old = moving.oldReplicas
        return (list + old.filter { !list.contains($0) }, [list, old])
    }

    /// The pending arc holding `position`, if any.
    func pendingArc(containing position: UInt32) -> WirePendingArc? {
        var low = 0
        var high = pending.count
        while low < high {
            let middle = (low + high) / 2
            if pending[middle].range.lowerBound <= position { low = middle + 1 } else { high = middle }
        }
        guard low > 0, pending[low - 1].range.contains(position) else { return nil }
        return pending[low - 1].arc
    }

    /// The member that keeps a hint for a replica of this key that cannot take
    /// a write: the first live member clockwise after the key's replicas
    /// (Dynamo's sloppy stand-in); `nil` when every member is a replica.
    func standIn(forKey key: [UInt8], replicas: [String]) -> String? {
        guard let ring else { return nil }
        let taken = Set(replicas)
        return preferenceList(forKey: key, replicas: ring.members.count)
            .first { !taken.contains($0) && states[$0] != .down && states[$0] != .suspect }
    }

    /// Whether placement considers `address` down (so writes hint at once).
    func isDown(_ address: String) -> Bool { states[address] == .down }

    /// Whether `address` is a member this node knows of (a removed member gets no hints).
    func isKnownMember(_ address: String) -> Bool { states[address] != nil }

    /// Whether `address` keeps `key` under this view: one of its replicas, or
    /// an old or new replica of its arc while the arc moves. The complement of
    /// `garbage(for:)`.
    func keeps(key: [UInt8], address: String) -> Bool {
        if preferenceList(forKey: key, replicas: replicas).contains(address) { return true }
        guard let position = try? HashRing.position(forKey: key), let moving = pendingArc(containing: position) else { return false }
        return moving.oldReplicas.contains(address) || moving.newReplicas.contains(address)
    }

    /// The positions this node must keep: where it is a replica under the ring,
    /// or an old or new replica of a pending arc. The rest is garbage once the
    /// plan settled it (see `garbage(for:)`).
    func garbage(for address: String) -> [RingArc] {
        guard let ring, let segments = try? ring.segments(replicas: replicas) else { return [] }
        var keep: [ClosedRange<UInt32>] = segments.filter { $0.replicas.contains { $0.address == address } }.map(\.range)
        keep += pending.filter { $0.arc.oldReplicas.contains(address) || $0.arc.newReplicas.contains(address) }.map(\.range)
        keep.sort { $0.lowerBound < $1.lowerBound }
        var garbage: [RingArc] = []
        var next: UInt64 = 0
        for range in keep {
            if UInt64(range.lowerBound) > next {
                garbage.append(RingArc(first: UInt32(next), last: range.lowerBound - 1))
            }
            next = max(next, UInt64(range.upperBound) + 1)
        }
        if next <= UInt64(UInt32.max) { garbage.append(RingArc(first: UInt32(next), last: .max)) }
        return garbage
    }
}
