/// How many hints wait for delivery, in total and per target member.
public struct HintCounts: Hashable, Sendable {
    /// Pending hints for every target together.
    public var total: Int
    /// Pending hints per target address; targets with none are absent.
    public var byTarget: [String: Int]

    /// Counts of `total` hints split as `byTarget`.
    public init(total: Int = 0, byTarget: [String: Int] = [:]) {
        self.total = total
        self.byTarget = byTarget
    }
}
