import RPC

/// The quorum a coordinated request waits for: `needed` answers from each
/// group of replicas (one group normally; the new and the old replicas while
/// the key's arc is moving), capped at a group's size.
struct QuorumGroups {
    let replicas: [String]
    let groups: [[String]]
    let needed: Int

    /// Whether `answered` meets the quorum in every group.
    func met(by answered: Set<String>) -> Bool {
        groups.allSatisfy { group in group.count(where: answered.contains) >= min(needed, group.count) }
    }

    /// Whether the quorum can no longer be met once `failed` failed.
    func impossible(after failed: Set<String>) -> Bool {
        groups.contains { group in group.count(where: { !failed.contains($0) }) < min(needed, group.count) }
    }

    /// UNAVAILABLE for a quorum that can no longer be met: how many replicas `did`
    /// (acknowledged, answered), how many were needed, and why each failure failed.
    func shortfall(_ count: Int, _ did: String, _ failures: [String: String]) -> RPCError {
        let detail = failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
        let moving = groups.count > 1 ? " in each of the old and new replica sets (the key's arc is moving)" : ""
        return .unavailable("only \(count) of \(replicas.count) replicas \(did), \(needed) needed\(moving) (\(detail))")
    }
}
