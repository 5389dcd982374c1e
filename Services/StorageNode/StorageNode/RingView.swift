import Ring
import RingProtocol

/// The ring a node routes by, built from placement's ring info, plus what it
/// knows of each member's liveness.
struct RingView {
    let info: WireRingInfo
    let ring: HashRing?
    var states: [String: WireMemberState]

    init(info: WireRingInfo) {
        self.info = info
        states = Dictionary(info.members.map { ($0.address, $0.state) }, uniquingKeysWith: { _, last in last })
        let members = info.members.compactMap { try? RingMember(address: $0.address, weight: Int(max(1, $0.weight))) }
        ring = members.isEmpty ? nil : try? HashRing(members: members, density: Int(max(1, info.density)))
    }

    var replicas: Int { Int(max(1, info.replicas)) }

    /// The first `n` distinct members clockwise from the key's position.
    func preferenceList(forKey key: [UInt8], replicas n: Int) -> [String] {
        guard let ring, let list = try? ring.preferenceList(forKey: key, replicas: n) else { return [] }
        return list.map(\.address)
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
}
