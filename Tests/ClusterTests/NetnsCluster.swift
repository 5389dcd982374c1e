import Foundation
import RPC
import RingProtocol
import Synchronization
import TestKit
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// Network namespaces for partition tests: `ip netns` and `ip link`, and a
/// ZeroMQ context whose sockets live in a namespace.
///
/// Everything happens in namespaces the test creates (named `rsf-<pid>-…`);
/// the host's own network is never touched.
enum Netns {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The `ip` tool of iproute2, if installed.
    static let ipTool: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs `ip arguments...` and returns its output; throws with its stderr when it fails.
    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        guard let tool = ipTool else { throw Failure(description: "the `ip` tool (iproute2) is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // `ip` writes little; reading to the end before waiting cannot deadlock on these sizes.
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "ip \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): "
                + String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Why namespaces cannot be used here, or nil when `ip netns add` works.
    static let unavailableReason: String? = {
        guard ipTool != nil else { return "the `ip` tool (iproute2) is not installed" }
        removeLeftovers()
        let probe = "rsf-\(getpid())-probe"
        do {
            try ip(["netns", "add", probe])
        } catch {
            return "`ip netns add` is not permitted here (needs root or CAP_SYS_ADMIN): \(error)"
        }
        defer { _ = try? ip(["netns", "delete", probe]) }
        do {
            try ip(["-n", probe, "link", "add", "name", "br0", "type", "bridge"])
            try ip(["-n", probe, "link", "add", "name", "va", "type", "veth", "peer", "name", "vb"])
        } catch {
            return "bridges or veth pairs cannot be created in a network namespace here: \(error)"
        }
        return nil
    }()

    static var available: Bool {
        if let reason = unavailableReason {
            print("netns: skipping partition tests: \(reason)")
            return false
        }
        return true
    }

    /// One of our executables started in `namespace` (`ip netns exec` execs
    /// it, so the process's pid is the service's).
    static func process(in namespace: String, _ executable: String, _ arguments: [String]) throws -> ServiceProcess {
        guard let tool = ipTool else { throw Failure(description: "the `ip` tool (iproute2) is not installed") }
        let binary = ServiceProcess.binDirectory.appendingPathComponent(executable).path
        return try ServiceProcess(tool, ["netns", "exec", namespace, binary] + arguments)
    }

    /// Deletes namespaces that earlier test processes (now gone) left behind.
    static func removeLeftovers() {
        guard let list = try? ip(["netns", "list"]) else { return }
        for line in list.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            let parts = name.split(separator: "-")
            guard parts.count >= 3, parts[0] == "rsf", let pid = Int32(parts[1]), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { _ = try? ip(["netns", "delete", name]) }
        }
    }

    /// A ZeroMQ context whose I/O threads (which open every TCP connection of its
    /// sockets) run in `namespace`: a thread of its own enters the namespace and
    /// creates the context's first socket, which starts those threads there.
    static func context(in namespace: String) throws -> ZMQContext {
        let result = Mutex<Result<ZMQContext, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let outcome = Result<ZMQContext, any Error> { try makeContext(in: namespace) }
            result.withLock { $0 = outcome }
            done.signal()
        }
        thread.start()
        done.wait()
        return try result.withLock { $0! }.get()
    }

    private typealias SetNamespace = @convention(c) (Int32, Int32) -> Int32
    private static let cloneNewNet: Int32 = 0x4000_0000

    private static func makeContext(in namespace: String) throws -> ZMQContext {
        guard let symbol = dlsym(nil, "setns") else { throw Failure(description: "setns is not available") }
        let setNamespace = unsafeBitCast(symbol, to: SetNamespace.self)
        let original = open("/proc/thread-self/ns/net", O_RDONLY)
        let target = open("/var/run/netns/\(namespace)", O_RDONLY)
        defer {
            if original >= 0 { close(original) }
            if target >= 0 { close(target) }
        }
        guard original >= 0, target >= 0 else { throw Failure(description: "cannot open the namespace files of \(namespace)") }
        guard setNamespace(target, cloneNewNet) == 0 else {
            throw Failure(description: "setns(\(namespace)) failed: \(String(cString: strerror(errno)))")
        }
        defer { _ = setNamespace(original, cloneNewNet) }
        let context = try ZMQContext()
        let first = try ZMQSocket(context: context, type: .dealer)
        first.close()
        return context
    }
}

/// Placement, the lock service and storage nodes, each process in its own
/// network namespace with its own address on a bridge; the test's clients
/// live in the bridge's namespace. Cutting a node's link partitions it from
/// everyone (peers, placement and clients); healing restores it. CURVE is
/// on, as in `LocalCluster`: the services read the key files of
/// `ClusterKeys` (namespaces separate networks, not file systems).
///
///     hub namespace: bridge br0 10.77.0.1/24, ports vp, vl, vn0, vn1, ...
///     placement 10.77.0.2, lock 10.77.0.3, node i 10.77.0.(10+i), each on eth0
final class NetnsCluster: FaultCluster, @unchecked Sendable {
    let prefix: String
    let hub: String
    let context: ZMQContext
    let suspectAfter: Double
    let downAfter: Double
    let nodeCount: Int
    let dataDirectory: URL
    /// The cluster's keys; nil for a cluster made with `secured: false` (every service `--insecure`).
    let keys: ClusterKeys?
    /// Every process listens on these ports in its own namespace, where nothing else runs.
    static let requestPort = 17_000, eventPort = 17_001
    private(set) var namespaces: [String] = []
    private(set) var placement: ServiceProcess?
    private(set) var lock: ServiceProcess?
    private var nodes: [ServiceProcess?]

    var placementEndpoint: String { "tcp://10.77.0.2:\(Self.requestPort)" }
    var placementEvents: String { "tcp://10.77.0.2:\(Self.eventPort)" }
    var lockEndpoint: String { "tcp://10.77.0.3:\(Self.requestPort)" }
    var lockEvents: String { "tcp://10.77.0.3:\(Self.eventPort)" }
    func nodeEndpoint(_ index: Int) -> String { "tcp://10.77.0.\(10 + index):\(Self.requestPort)" }
    func nodeAddress(_ index: Int) -> String { "10.77.0.\(10 + index):\(Self.requestPort)" }
    func nodeProcess(_ index: Int) -> ServiceProcess { nodes[index]! }

    /// Creates the namespaces, the bridge and the links; on any failure removes
    /// what it created and throws.
    init(nodes count: Int, suspectAfter: Double = 1.0, downAfter: Double = 2.0, secured: Bool = true) throws {
        prefix = "rsf-\(getpid())-\(UInt32.random(in: 0..<UInt32.max) % 0xFFFFFF)"
        hub = "\(prefix)-hub"
        nodeCount = count
        nodes = Array(repeating: nil, count: count)
        self.suspectAfter = suspectAfter
        self.downAfter = downAfter
        dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-netns-\(UUID().uuidString)")
        keys = secured ? try ClusterKeys(directory: dataDirectory.appendingPathComponent("keys"), nodes: count) : nil
        var created: [String] = []
        do {
            try Self.build(prefix: prefix, hub: hub, nodes: count, created: &created)
            context = try Netns.context(in: hub)
        } catch {
            for namespace in created.reversed() { _ = try? Netns.ip(["netns", "delete", namespace]) }
            try? FileManager.default.removeItem(at: dataDirectory)
            throw error
        }
        namespaces = created
    }

    /// The hub namespace with its bridge, and a namespace per process linked to it.
    private static func build(prefix: String, hub: String, nodes count: Int, created: inout [String]) throws {
        try Netns.ip(["netns", "add", hub])
        created.append(hub)
        try Netns.ip(["-n", hub, "link", "set", "lo", "up"])
        try Netns.ip(["-n", hub, "link", "add", "br0", "type", "bridge"])
        try Netns.ip(["-n", hub, "addr", "add", "10.77.0.1/24", "dev", "br0"])
        try Netns.ip(["-n", hub, "link", "set", "br0", "up"])
        var hosts = [("p", "10.77.0.2"), ("l", "10.77.0.3")]
        for index in 0..<count { hosts.append(("n\(index)", "10.77.0.\(10 + index)")) }
        for (role, address) in hosts {
            // A namespace `<prefix>-<role>` whose eth0 (address/24) is linked to port `v<role>` of the bridge.
            let namespace = "\(prefix)-\(role)"
            try Netns.ip(["netns", "add", namespace])
            created.append(namespace)
            try Netns.ip(["-n", namespace, "link", "set", "lo", "up"])
            try Netns.ip(["-n", hub, "link", "add", "name", "v\(role)", "type", "veth", "peer", "name", "eth0", "netns", namespace])
            try Netns.ip(["-n", hub, "link", "set", "dev", "v\(role)", "master", "br0"])
            try Netns.ip(["-n", hub, "link", "set", "dev", "v\(role)", "up"])
            try Netns.ip(["-n", namespace, "addr", "add", "\(address)/24", "dev", "eth0"])
            try Netns.ip(["-n", namespace, "link", "set", "eth0", "up"])
        }
    }

    /// Stops every process and deletes the namespaces and the data. Idempotent.
    func destroy() async {
        for process in ([placement, lock] + nodes).compactMap({ $0 }) where process.isRunning {
            kill(process.pid, SIGCONT)
            _ = try? await process.stop(signal: SIGKILL)
        }
        for namespace in namespaces.reversed() { _ = try? Netns.ip(["netns", "delete", namespace]) }
        namespaces = []
        try? FileManager.default.removeItem(at: dataDirectory)
    }

    /// Cuts node `index`'s link: nothing reaches it and it reaches nothing.
    func cut(_ index: Int) throws { try Netns.ip(["-n", hub, "link", "set", "dev", "vn\(index)", "down"]) }

    /// Restores node `index`'s link.
    func heal(_ index: Int) throws { try Netns.ip(["-n", hub, "link", "set", "dev", "vn\(index)", "up"]) }

    // MARK: Processes

    /// The test's credentials: admin's, or nil without CURVE.
    var security: ClientSecurity? { keys?.adminSecurity }

    /// An RPC client of `endpoint`, from the hub namespace, as admin.
    func rpc(_ endpoint: String, caller: String = "fault-test") throws -> RPCClient {
        try RPCClient(context: context, endpoint: endpoint, caller: caller, security: security)
    }

    /// The options of every service: the keys, or `--insecure`.
    private var serverSecurity: [String] { keys?.serverArguments ?? ["--insecure"] }

    private func launch(_ role: String, _ executable: String, _ arguments: [String]) throws -> ServiceProcess {
        try Netns.process(in: "\(prefix)-\(role)", executable, arguments)
    }

    func start() async throws {
        placement = try launch("p", "ringstore-placement", [
            "--listen", placementEndpoint, "--publish", placementEvents,
            "--data-dir", dataDirectory.appendingPathComponent("placement").path,
            "--suspect-after", "\(suspectAfter)", "--down-after", "\(downAfter)",
        ] + serverSecurity)
        try await waitHealthy(placementEndpoint, PlacementMethods.health)
        lock = try launch("l", "ringstore-lock", ["--listen", lockEndpoint, "--publish", lockEvents,
                                                  "--data-dir", dataDirectory.appendingPathComponent("lock").path] + serverSecurity)
        try await waitHealthy(lockEndpoint, LockMethods.health)
        for index in 0..<nodeCount { try await restartNode(index) }
        try await waitUntilUp((0..<nodeCount).map(nodeAddress))
        for index in 0..<nodeCount {
            let client = try rpc(nodeEndpoint(index))
            defer { client.close() }
            try await waitUntil("node \(index) to follow the full ring", timeout: .seconds(20)) {
                let health = try await client.call(StorageMethods.health, WireHealthRequest())
                return health.details["ring_members"] == "\(nodeCount)"
            }
        }
    }

    func restartNode(_ index: Int) async throws {
        nodes[index] = try launch("n\(index)", "ringstore-node", [
            "--listen", nodeEndpoint(index), "--placement", placementEndpoint, "--placement-events", placementEvents,
            "--heartbeat-interval", "0.1",
            "--data-dir", dataDirectory.appendingPathComponent("node-\(index)").path,
        ] + serverSecurity + (keys.map { ["--client-key", $0.secret("node-\(index)")] } ?? []))
        try await waitHealthy(nodeEndpoint(index), StorageMethods.health)
    }

    func waitHealthy(_ endpoint: String, _ method: RPCMethod<WireHealthRequest, WireHealthReply>) async throws {
        let client = try rpc(endpoint)
        defer { client.close() }
        try await waitUntil("\(endpoint) to answer Health", timeout: .seconds(20)) {
            (try? await client.call(method, WireHealthRequest(), options: CallOptions(timeout: .milliseconds(500))))?.status == .serving
        }
    }

    func members() async throws -> (epoch: UInt64, members: [String: WireMember]) {
        let client = try rpc(placementEndpoint)
        defer { client.close() }
        let reply = try await client.call(PlacementMethods.getMembers, WireGetMembersRequest())
        return (reply.epoch, Dictionary(uniqueKeysWithValues: reply.members.map { ($0.address, $0) }))
    }
}
