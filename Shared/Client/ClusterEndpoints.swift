import RPC

/// Where the cluster's services are, with the local-cluster defaults of the
/// design and the `RINGSTORE_PLACEMENT` / `RINGSTORE_LOCKS` overrides.
public struct ClusterEndpoints: Sendable, Equatable {
    /// The placement service's request endpoint.
    public var placement: String
    /// The placement service's event endpoint.
    public var placementEvents: String
    /// The lock service's request endpoint.
    public var locks: String
    /// The lock service's event endpoint.
    public var lockEvents: String
    /// Storage node addresses (`host:port`) to use until placement knows the members.
    public var nodes: [String]

    public static let defaultPlacement = "tcp://127.0.0.1:7400"
    public static let defaultLocks = "tcp://127.0.0.1:7410"
    public static let defaultNodes = ["127.0.0.1:7501", "127.0.0.1:7502", "127.0.0.1:7503"]

    /// Endpoints from explicit values, else the environment, else the defaults.
    /// An event endpoint is the request endpoint's port plus one.
    public init(placement: String? = nil, locks: String? = nil, nodes: [String]? = nil,
                environment: [String: String] = [:]) {
        let placement = Self.normalize(placement ?? environment["RINGSTORE_PLACEMENT"] ?? Self.defaultPlacement)
        let locks = Self.normalize(locks ?? environment["RINGSTORE_LOCKS"] ?? Self.defaultLocks)
        self.placement = placement
        self.locks = locks
        placementEvents = Self.nextPort(of: placement)
        lockEvents = Self.nextPort(of: locks)
        self.nodes = nodes ?? Self.defaultNodes
    }

    /// `host:port` becomes `tcp://host:port`; a full endpoint is kept.
    public static func normalize(_ value: String) -> String {
        Endpoint.endpoint(for: value)
    }

    /// `tcp://h:7400` → `tcp://h:7401`; other shapes are returned unchanged.
    static func nextPort(of endpoint: String) -> String {
        guard let colon = endpoint.lastIndex(of: ":"),
              let port = UInt16(endpoint[endpoint.index(after: colon)...]), port < UInt16.max
        else { return endpoint }
        return endpoint[..<colon] + ":\(port + 1)"
    }
}
