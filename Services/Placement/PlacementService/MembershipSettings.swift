/// The cluster settings and failure-detection timeouts placement works with.
public struct MembershipSettings: Sendable, Equatable {
    /// A member that has not heartbeated for this long becomes suspect.
    public var suspectAfter: Duration
    /// ...and down after this long (it stays in the ring until removed).
    public var downAfter: Duration
    /// Remove a down member automatically after this long down; `nil`: never
    /// (an operator runs `ringctl remove`).
    public var removeAfter: Duration?
    /// Replicas per key (N).
    public var replicas: Int
    /// Ring density: digests per unit of weight (40 is Ketama's 160 points).
    public var density: Int
    /// The cluster's W and R for requests that set none (0: a majority of N).
    /// Set here once and carried in the ring to every node and client.
    public var writeQuorum: Int = 0
    public var readQuorum: Int = 0

    /// Defaults: heartbeats every second from nodes, suspect after 3 s
    /// without one, down after 10 s, never removed automatically, N=3, density 40.
    public init(suspectAfter: Duration = .seconds(3), downAfter: Duration = .seconds(10), removeAfter: Duration? = nil,
                replicas: Int = 3, density: Int = 40) {
        self.suspectAfter = suspectAfter
        self.downAfter = downAfter
        self.removeAfter = removeAfter
        self.replicas = replicas
        self.density = density
    }
}
