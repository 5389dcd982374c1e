import Foundation
import RPC
import RingProtocol
import RingstoreClient
import TestKit
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// Three lock-service replicas on a three-member etcd, replica A (index 0)
/// in a network namespace of its own with two links to the root namespace:
/// one it reaches etcd through, one its clients reach it through. Replicas B
/// and C and the test's clients run in the root namespace. Cutting A's etcd
/// link cuts it off from etcd (and so from the election) while its clients
/// still reach it.
///
///     root namespace: etcd on X.1 (bridge rs<pid>b<tag>), B and C on 127.0.0.1, the test
///     A's namespace rsf-<pid>-<tag>-a: etcd0 X.2/30 --- rs<pid>e<tag>, a port of the bridge (X.1/30)
///                                     client0 X.6/30 --- rs<pid>c<tag> (X.5/30)
///
/// The link is cut at either end (`Cut`): A's end down, so A's calls to etcd
/// fail at once (no route), or the bridge's end down, so what A sends is
/// lost and its calls time out, as in a real partition. The bridge keeps
/// X.1 up for etcd and for B and C either way.
///
/// X is 10.79.N with N random and unused here. The namespace is named like
/// NetnsCluster's, so `Netns.removeLeftovers` deletes it (and the veths,
/// whose ends are in it) after a test process that died without cleaning
/// up; the next fixture deletes such a process's bridge.
final class SplitLockCluster: @unchecked Sendable {
    /// A listens on these ports of client0 (nothing else runs in its namespace).
    static let requestPort = 17_000, eventPort = 17_001
    let leaderTTL = 2
    let namespace: String
    let subnet: String
    let rootLinks: [String]
    let dataDirectory: URL
    let keys: ClusterKeys
    let context: ZMQContext
    /// A's, B's and C's request endpoints (A's on client0).
    let endpoints: [String]
    private let events: [String]
    private(set) var etcd: EtcdCluster?
    private var processes: [ServiceProcess?] = [nil, nil, nil]
    private var built = false

    var etcdHost: String { "\(subnet).1" }

    /// Creates A's namespace and links; on a failure removes what it made and throws.
    init() throws {
        Self.removeLeftovers()
        let tag = String(format: "%02x", UInt32.random(in: 0..<0x100))
        namespace = "rsf-\(getpid())-\(tag)-a"
        rootLinks = ["e", "c", "b"].map { "rs\(getpid())\($0)\(tag)" }
        let used = try Netns.ip(["-4", "-o", "addr", "show"])
        guard let octet = (0..<256).shuffled().first(where: { !used.contains("10.79.\($0).") }) else {
            throw FixtureError("no free 10.79.N.0/24 on this host")
        }
        subnet = "10.79.\(octet)"
        dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-split-\(UUID().uuidString)")
        keys = try ClusterKeys(directory: dataDirectory.appendingPathComponent("keys"), nodes: 0)
        context = try ZMQContext()
        let others = (0..<2).map { _ in (FreePort.endpoint(), FreePort.endpoint()) }
        endpoints = ["tcp://\(subnet).6:\(Self.requestPort)"] + others.map(\.0)
        events = ["tcp://\(subnet).6:\(Self.eventPort)"] + others.map(\.1)
        do {
            try build()
        } catch {
            destroy()
            throw error
        }
    }

    deinit { destroy() }

    /// Deletes the bridges (and any veth end) of test processes that are gone.
    private static func removeLeftovers() {
        guard let list = try? Netns.ip(["-o", "link", "show"]) else { return }
        for line in list.split(separator: "\n") {
            let fields = line.components(separatedBy: ": ")
            guard fields.count > 1, let name = fields[1].split(separator: "@").first.map(String.init),
                  let match = name.wholeMatch(of: /rs([0-9]+)[ecb][0-9a-f]{2}/), let pid = Int32(match.1), pid != getpid(),
                  kill(pid, 0) != 0 && errno == ESRCH else { continue }
            _ = try? Netns.ip(["link", "delete", name])
        }
    }

    private func build() throws {
        try Netns.ip(["netns", "add", namespace])
        built = true
        try Netns.ip(["-n", namespace, "link", "set", "lo", "up"])
        let bridge = rootLinks[2]
        try Netns.ip(["link", "add", bridge, "type", "bridge"])
        try Netns.ip(["addr", "add", "\(subnet).1/30", "dev", bridge])
        try Netns.ip(["link", "set", bridge, "up"])
        for (root, inside, host) in [(rootLinks[0], "etcd0", 0), (rootLinks[1], "client0", 4)] {
            try Netns.ip(["link", "add", root, "type", "veth", "peer", "name", inside, "netns", namespace])
            if host == 0 {
                try Netns.ip(["link", "set", root, "master", bridge])
            } else {
                try Netns.ip(["addr", "add", "\(subnet).\(host + 1)/30", "dev", root])
            }
            try Netns.ip(["link", "set", root, "up"])
            try Netns.ip(["-n", namespace, "addr", "add", "\(subnet).\(host + 2)/30", "dev", inside])
            try Netns.ip(["-n", namespace, "link", "set", inside, "up"])
        }
    }

    /// Starts etcd on the root end of A's etcd link, then A, waits until it
    /// leads, then B and C, and waits until both follow A and A has led
    /// longer than its first lease (so it renews it).
    func start() async throws {
        etcd = try await EtcdCluster.start(size: 3, host: etcdHost)
        try await startReplica(0)
        try await waitUntil("replica A to lead", timeout: .seconds(20)) { try await role(0) == "leader" }
        let leads = ContinuousClock.now
        try await startReplica(1)
        try await startReplica(2)
        try await waitUntil("B and C to follow A", timeout: .seconds(20)) {
            for replica in [1, 2] {
                guard let details = try await details(replica), details["role"] == "follower",
                      details["leader"].map(Endpoint.endpoint(for:)) == endpoints[0] else { return false }
            }
            return true
        }
        // Still leading after its first lease ran out: it renewed it.
        try await waitUntil("A to lead past its first lease", timeout: .seconds(20)) {
            guard try await role(0) == "leader" else { throw FixtureError("A stopped leading before anything was cut") }
            return leads.duration(to: .now) > .seconds(leaderTTL) + .milliseconds(500)
        }
    }

    /// Starts replica `replica` (A in its namespace) and waits until it answers Health.
    func startReplica(_ replica: Int) async throws {
        guard let etcd else { throw FixtureError("etcd is not started") }
        let arguments = ["--listen", endpoints[replica], "--publish", events[replica],
                         "--data-dir", dataDirectory.appendingPathComponent("lock-\(replica)").path,
                         "--store", etcd.storeURL, "--leader-ttl", "\(leaderTTL)"] + keys.serverArguments
        processes[replica] = replica == 0
            ? try Netns.process(in: namespace, "ringstore-lock", arguments)
            : try ServiceProcess("ringstore-lock", arguments)
        try await waitUntil("lock replica \(replica) to answer Health", timeout: .seconds(20)) { try await details(replica) != nil }
    }

    func process(_ replica: Int) -> ServiceProcess { processes[replica]! }

    /// Replica `replica`'s Health details (`role`, a follower's `leader`), asked
    /// of it alone; nil when it does not answer within half a second.
    func details(_ replica: Int) async throws -> [String: String]? {
        let client = try RPCClient(context: context, endpoint: endpoints[replica], caller: "replica-probe", security: keys.adminSecurity)
        defer { client.close() }
        let reply = try? await client.call(LockMethods.health, WireHealthRequest(), options: CallOptions(timeout: .milliseconds(500)))
        return reply?.details
    }

    func role(_ replica: Int) async throws -> String? { try await details(replica)?["role"] }

    /// The replicas whose Health says they lead.
    func leaders() async throws -> [Int] {
        var leaders: [Int] = []
        for replica in endpoints.indices where try await role(replica) == "leader" { leaders.append(replica) }
        return leaders
    }

    /// A lock client acting as `owner` with the client key, of the replicas `replicas`.
    func lockClient(_ replicas: [Int], owner: String, callTimeout: Duration = .seconds(2)) throws -> LockClient {
        try LockClient(context: ClientContext(context, credentials: keys.credentials(as: "client")),
                       endpoints: replicas.map { endpoints[$0] }, owner: owner, callTimeout: callTimeout)
    }

    /// Where A's etcd link is cut.
    enum Cut: String, CustomStringConvertible {
        /// A's end goes down: A has no route to etcd, its calls fail at once.
        case atA
        /// The bridge's end goes down: A's end stays up without a carrier,
        /// what it sends is lost and its calls time out.
        case atBridge

        var description: String { rawValue }
    }

    /// Cuts A's etcd link: A reaches no etcd member, and its clients still reach it.
    func cutEtcdLink(_ cut: Cut) throws { try setEtcdLink(cut, "down") }

    func healEtcdLink(_ cut: Cut) throws { try setEtcdLink(cut, "up") }

    private func setEtcdLink(_ cut: Cut, _ state: String) throws {
        switch cut {
        case .atA: try Netns.ip(["-n", namespace, "link", "set", "etcd0", state])
        case .atBridge: try Netns.ip(["link", "set", rootLinks[0], state])
        }
    }

    /// Kills every process, stops etcd, deletes the namespace (and with it
    /// the links) and the data. Idempotent; safe in a `defer`.
    func destroy() {
        // ServiceProcess's deinit kills with SIGKILL and reaps.
        processes = [nil, nil, nil]
        etcd?.shutdown()
        etcd = nil
        if built {
            _ = try? Netns.ip(["netns", "delete", namespace])
            built = false
        }
        // Gone with the namespace; in case a half-built link was left in the root namespace.
        for link in rootLinks { _ = try? Netns.ip(["link", "delete", link]) }
        try? FileManager.default.removeItem(at: dataDirectory)
    }
}
