import RPC

/// Where the cluster's services are, with the local-cluster defaults of the
/// design and the `RINGSTORE_PLACEMENT` / `RINGSTORE_LOCKS` overrides.
///
/// Placement and the lock service may run as several replicas (one leader,
/// followers): each takes a comma-separated list (`a:7400,b:7402`), and
/// every client of this library uses all of them, following the leader.
public struct ClusterEndpoints: Sendable, Equatable {
    /// The placement replicas' request endpoints (one for a single placement).
    public var placement: [String]
    /// The placement replicas' event endpoints (only the leader publishes;
    /// subscribers connect to every one).
    public var placementEvents: [String]
    /// The lock service replicas' request endpoints.
    public var locks: [String]
    /// The lock service replicas' event endpoints.
    public var lockEvents: [String]
    /// Storage node addresses (`host:port`) to use until placement knows the members.
    public var nodes: [String]

    public static let defaultPlacement = "tcp://127.0.0.1:7400"
    public static let defaultLocks = "tcp://127.0.0.1:7410"
    public static let defaultNodes = ["127.0.0.1:7501", "127.0.0.1:7502", "127.0.0.1:7503"]

    /// Endpoints from explicit values, else the environment, else the
    /// defaults; each a comma-separated list of `host:port` or full endpoints
    /// (an empty list counts as absent). An event endpoint is its request
    /// endpoint's port plus one.
    public init(placement: String? = nil, locks: String? = nil, nodes: [String]? = nil,
                environment: [String: String] = [:]) {
        self.placement = Self.list(placement, environment["RINGSTORE_PLACEMENT"], Self.defaultPlacement)
        self.locks = Self.list(locks, environment["RINGSTORE_LOCKS"], Self.defaultLocks)
        placementEvents = self.placement.map(Endpoint.events(of:))
        lockEvents = self.locks.map(Endpoint.events(of:))
        self.nodes = nodes ?? Self.defaultNodes
    }

    /// The first non-empty list of `choices`.
    private static func list(_ choices: String?...) -> [String] {
        for case let choice? in choices {
            let endpoints = parse(choice)
            if !endpoints.isEmpty { return endpoints }
        }
        return []
    }

    /// A comma-separated list of endpoints (`host:port` becomes
    /// `tcp://host:port`; blanks and repeats are dropped).
    public static func parse(_ list: String) -> [String] {
        Endpoint.list(list)
    }

    /// `host:port` becomes `tcp://host:port`; a full endpoint is kept.
    public static func normalize(_ value: String) -> String {
        Endpoint.endpoint(for: value)
    }

    /// Why `endpoint` is not usable (a transport, `host:port`), or nil.
    public static func problem(with endpoint: String) -> String? {
        Endpoint.problem(with: endpoint)
    }

    /// A list of endpoints for messages: `tcp://a:7400,tcp://b:7402`.
    public static func describe(_ endpoints: [String]) -> String {
        endpoints.joined(separator: ",")
    }
}
