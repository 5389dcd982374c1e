import Foundation
import RPC
import RingProtocol
import RingstoreClient
import TestKit
import ZeroMQ

/// Placement, the lock service and storage nodes as real processes on free
/// loopback ports, for end-to-end tests. CURVE is on by default (the keys of
/// `ClusterKeys`); `secured: false` starts every service with `--insecure`.
/// Tests make their connections through `rpc`, `clientContext`, `subscribe`
/// and `ringctl…`, which carry the keys, never by hand.
final class LocalCluster: @unchecked Sendable {
    let placementEndpoint = FreePort.endpoint()
    let placementEvents = FreePort.endpoint()
    let lockEndpoint = FreePort.endpoint()
    let lockEvents = FreePort.endpoint()
    private(set) var nodeEndpoints: [String]
    private(set) var placement: ServiceProcess!
    private(set) var lock: ServiceProcess!
    private(set) var nodes: [ServiceProcess?] = []
    let context: ZMQContext
    /// Fast failure detection so tests see suspect and down in seconds.
    let suspectAfter: Double
    let downAfter: Double
    let heartbeatInterval = 0.1
    let dataDirectory: URL
    /// Extra arguments for every node (e.g. `--sync normal`).
    var nodeArguments: [String] = []
    /// With `serveRESP()`: each node's RESP port, and the password AUTH takes
    /// (on a secured cluster).
    private(set) var respPorts: [UInt16] = []
    private(set) var respPassword: String?
    /// Extra arguments for placement (e.g. `--replicas 1`).
    var placementArguments: [String] = []
    /// Whether `start()` starts the single lock service; false when a test
    /// runs its own (`ReplicatedLockService`: replicas on etcd).
    var startsLock = true
    /// With keys, every process runs with CURVE and the allowlist of `ClusterKeys`;
    /// nil only for a cluster made with `secured: false`.
    let keys: ClusterKeys?
    /// Placement's replicas, once `replicatePlacement(on:replicas:leaderTTL:)`
    /// made it replicated (`placement` stays nil then); nil: one embedded placement.
    private(set) var placementReplicas: PlacementReplicaSet?

    init(nodes count: Int, suspectAfter: Double = 1.0, downAfter: Double = 2.0, secured: Bool = true) throws {
        nodeEndpoints = (0..<count).map { _ in FreePort.endpoint() }
        context = try ZMQContext()
        self.suspectAfter = suspectAfter
        self.downAfter = downAfter
        dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-cluster-\(UUID().uuidString)")
        keys = secured ? try ClusterKeys(directory: dataDirectory.appendingPathComponent("keys"), nodes: count + Self.spareNodeKeys) : nil
    }

    /// Node keys listed beyond the first nodes, for the nodes `addNode` adds
    /// (the services read the allowlist when they start).
    static let spareNodeKeys = 2

    // MARK: Connections of the test

    /// The test's own CURVE credentials: admin's on a secured cluster, nil otherwise.
    var security: ClientSecurity? { keys?.adminSecurity }

    /// An RPC client of `endpoint` (any service of this cluster) as admin.
    func rpc(_ endpoint: String, caller: String = "cluster-test") throws -> RPCClient {
        try RPCClient(context: context, endpoint: endpoint, caller: caller, security: security)
    }

    /// An RPC client of placement as admin: of every replica when it is
    /// replicated (the client follows the leader), else of the one placement.
    func placementRPC(caller: String = "cluster-test") throws -> RPCClient {
        try RPCClient(context: context, endpoints: placementEndpoints, caller: caller, security: security)
    }

    /// Every placement replica's request endpoint; just `placementEndpoint` unless replicated.
    var placementEndpoints: [String] { placementReplicas?.endpoints ?? [placementEndpoint] }

    /// Every placement replica's event endpoint; just `placementEvents` unless replicated.
    var placementEventEndpoints: [String] { placementReplicas?.events ?? [placementEvents] }

    /// Placement as `replicas` replicas on `etcd` (`--store`, `--leader-ttl`),
    /// from the next `start()` on; nodes and ringctl are given every replica.
    /// Replica 0 listens on `placementEndpoint` and `placementEvents`.
    func replicatePlacement(on etcd: EtcdCluster, replicas: Int = 3, leaderTTL: Int = 2) {
        let others = (1..<max(1, replicas)).map { _ in (FreePort.endpoint(), FreePort.endpoint()) }
        placementReplicas = PlacementReplicaSet(store: etcd.storeURL, leaderTTL: leaderTTL,
                                                endpoints: [placementEndpoint] + others.map(\.0),
                                                events: [placementEvents] + others.map(\.1))
    }

    /// A client library context over `context` (the cluster's by default)
    /// whose clients connect as `key` (`client`, `other-client` or `admin`).
    func clientContext(as key: String = "client", context: ZMQContext? = nil) throws -> ClientContext {
        ClientContext(context ?? self.context, credentials: try keys?.credentials(as: key))
    }

    /// A subscription to the event endpoint `endpoint` (placement's or the lock service's), as admin.
    func subscribe(_ endpoint: String, topics: [String], context: ZMQContext? = nil) throws -> EventSubscription {
        try EventSubscription(context: context ?? self.context, endpoints: [endpoint], topics: topics, security: security)
    }

    /// The options of every service: the keys, or `--insecure`.
    var serverSecurity: [String] { keys?.serverArguments ?? ["--insecure"] }

    /// A node's options: the service's, and on a secured cluster its own key
    /// (node `index`'s) for the calls it makes.
    func nodeSecurity(_ index: Int) -> [String] {
        serverSecurity + (keys.map { ["--client-key", $0.secret("node-\(index)")] } ?? [])
    }

    /// ringctl's credentials as `key` (admin by default), or `--insecure`.
    func ringctlCredentials(as key: String = "admin") -> [String] {
        keys?.ringctl(as: key) ?? ["--insecure"]
    }

    /// What every ringctl command needs to reach this cluster: placement,
    /// the lock service and the credentials (admin's by default).
    func ringctlTarget(as key: String = "admin") -> [String] {
        ["--placement", placementEndpoints.joined(separator: ","), "--locks", lockEndpoint] + ringctlCredentials(as: key)
    }

    /// `ringctlTarget` plus the nodes, for `ringctl status`.
    var ringctlOptions: [String] {
        ringctlTarget() + ["--nodes", nodeEndpoints.indices.map(nodeAddress).joined(separator: ",")]
    }

    deinit {
        try? FileManager.default.removeItem(at: dataDirectory)
    }

    /// Starts every process and waits until each answers Health.
    func start() async throws {
        try await startPlacement()
        if startsLock { try await startLock() }
        for index in nodeEndpoints.indices { try await startNode(index) }
    }

    /// Starts (or restarts) the lock service on the same ports and data directory.
    func startLock() async throws {
        lock = try ServiceProcess("ringstore-lock", ["--listen", lockEndpoint, "--publish", lockEvents,
                                                     "--data-dir", dataDirectory.appendingPathComponent("lock").path]
                                                    + serverSecurity + httpArguments(lockHTTP))
        try await waitHealthy(lockEndpoint, LockMethods.health)
    }

    /// Starts (or restarts) placement on the same ports and data directory;
    /// replicated, every replica, and waits until one leads.
    func startPlacement() async throws {
        if placementReplicas != nil {
            for replica in placementEndpoints.indices { try await startPlacementReplica(replica) }
            _ = try await waitForPlacementLeader()
            return
        }
        placement = try ServiceProcess("ringstore-placement", placementOptions(replica: 0))
        try await waitHealthy(placementEndpoint, PlacementMethods.health)
    }

    /// The options of placement, or of its replica `replica` (its own ports
    /// and data directory, the etcd store; only replica 0 serves HTTP).
    func placementOptions(replica: Int) -> [String] {
        let replication = placementReplicas.map { set in
            ["--store", set.store, "--leader-ttl", "\(set.leaderTTL)"]
        } ?? []
        return [
            "--listen", placementEndpoints[replica], "--publish", placementEventEndpoints[replica],
            "--data-dir", dataDirectory.appendingPathComponent(replica == 0 ? "placement" : "placement-\(replica)").path,
            "--suspect-after", "\(suspectAfter)", "--down-after", "\(downAfter)",
        ] + serverSecurity + httpArguments(replica == 0 ? placementHTTP : nil) + replication + placementArguments
    }

    /// The address of node `index` on the ring.
    func nodeAddress(_ index: Int) -> String { nodeEndpoints[index].replacingOccurrences(of: "tcp://", with: "") }

    /// Adds a node on a new port (not started).
    func addNode() -> Int {
        nodeEndpoints.append(FreePort.endpoint())
        return nodeEndpoints.count - 1
    }

    /// Starts (or restarts) node `index` and waits for its Health; `extraArguments`
    /// come last (a repeated option's last value wins).
    /// Every node started from now on also serves RESP on a port of its own,
    /// with a password file (admin role) when the cluster is secured.
    func serveRESP() throws {
        respPorts = nodeEndpoints.indices.map { _ in FreePort.allocate() }
        guard keys != nil else { return }
        let password = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
        let file = dataDirectory.appendingPathComponent("resp-passwords")
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: file.path, contents: Data("admin \(password) operator\n".utf8),
                                       attributes: [.posixPermissions: 0o600])
        respPassword = password
    }

    /// With `serveHTTP()`: the operations ports of placement, the lock
    /// service and each node (by index; a node added later gets one too).
    private(set) var placementHTTP: UInt16?
    private(set) var lockHTTP: UInt16?
    private(set) var nodeHTTP: [Int: UInt16] = [:]

    /// Every process started from now on serves its operations port
    /// (/healthz, /readyz, /metrics; placement's status page) on loopback.
    func serveHTTP() {
        placementHTTP = FreePort.allocate()
        lockHTTP = FreePort.allocate()
        for index in nodeEndpoints.indices { nodeHTTP[index] = FreePort.allocate() }
    }

    private func httpArguments(_ port: UInt16?) -> [String] {
        port.map { ["--http-listen", "127.0.0.1:\($0)"] } ?? []
    }

    private func nodeHTTPArguments(_ index: Int) -> [String] {
        guard placementHTTP != nil else { return [] }
        if nodeHTTP[index] == nil { nodeHTTP[index] = FreePort.allocate() }
        return httpArguments(nodeHTTP[index])
    }

    /// Node `index`'s RESP options (none unless `serveRESP()`).
    private func respArguments(_ index: Int) -> [String] {
        guard index < respPorts.count else { return [] }
        return ["--resp-listen", "127.0.0.1:\(respPorts[index])"]
            + (respPassword == nil ? [] : ["--resp-passwords", dataDirectory.appendingPathComponent("resp-passwords").path])
    }

    func startNode(_ index: Int, extraArguments: [String] = []) async throws {
        while nodes.count <= index { nodes.append(nil) }
        if let keys, index >= keys.nodes.count {
            throw FixtureError("node \(index) has no key: the allowlist lists \(keys.nodes.count) nodes (LocalCluster.spareNodeKeys)")
        }
        nodes[index] = try ServiceProcess("ringstore-node", [
            "--listen", nodeEndpoints[index], "--placement", placementEndpoints.joined(separator: ","),
            "--placement-events", placementEventEndpoints.joined(separator: ","),
            "--heartbeat-interval", "\(heartbeatInterval)",
            "--data-dir", dataDirectory.appendingPathComponent("node-\(index)").path,
        ] + nodeSecurity(index) + respArguments(index) + nodeHTTPArguments(index) + nodeArguments + extraArguments)
        try await waitHealthy(nodeEndpoints[index], StorageMethods.health)
    }

    func node(_ index: Int) -> ServiceProcess { nodes[index]! }

    /// Placement's view of the members, by address.
    func members() async throws -> (epoch: UInt64, members: [String: WireMember]) {
        let client = try placementRPC()
        defer { client.close() }
        let reply = try await client.call(PlacementMethods.getMembers, WireGetMembersRequest())
        return (reply.epoch, Dictionary(uniqueKeysWithValues: reply.members.map { ($0.address, $0) }))
    }

    /// Waits until placement lists every address in `addresses` with `state`.
    func waitForMembers(_ addresses: [String], state: WireMemberState, timeout: Duration = .seconds(20)) async throws {
        try await waitUntil("\(addresses) to be \(state)", timeout: timeout) {
            guard let members = try? await members().members else { return false }
            return addresses.allSatisfy { members[$0]?.state == state }
        }
    }

    func waitHealthy(_ endpoint: String, _ method: RPCMethod<WireHealthRequest, WireHealthReply>) async throws {
        let client = try rpc(endpoint)
        defer { client.close() }
        try await waitUntil("\(endpoint) to answer Health", timeout: .seconds(20)) {
            (try? await client.call(method, WireHealthRequest(), options: CallOptions(timeout: .milliseconds(500))))?.status == .serving
        }
    }

    /// An RPC client of node `index`.
    func nodeClient(_ index: Int) throws -> RPCClient {
        try rpc(nodeEndpoints[index])
    }

    /// Node `index`'s engine figures.
    func stats(_ index: Int) async throws -> WireStatsReply {
        let client = try nodeClient(index)
        defer { client.close() }
        return try await client.call(StorageMethods.stats, WireStatsRequest())
    }

    /// Starts the cluster and waits until every node is an up member following
    /// a ring of all of them.
    func startAndSettle() async throws {
        try await start()
        try await waitForMembers(nodeEndpoints.indices.map(nodeAddress), state: .up)
        for index in nodeEndpoints.indices {
            let client = try nodeClient(index)
            defer { client.close() }
            try await waitUntil("node \(index) to follow the full ring") {
                let health = try await client.call(StorageMethods.health, WireHealthRequest())
                return health.details["ring_members"] == "\(nodeEndpoints.count)"
            }
        }
    }

    /// Stops everything with SIGTERM and returns the exit statuses.
    @discardableResult
    func stop() async throws -> [Int32] {
        var statuses: [Int32] = []
        for process in (nodes + [lock, placement] + (placementReplicas?.processes ?? [])).compactMap({ $0 }) where process.isRunning {
            statuses.append(try await process.stop())
        }
        return statuses
    }
}
