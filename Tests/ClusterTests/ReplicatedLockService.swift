import Foundation
import RPC
import RingProtocol
import Synchronization
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// The lock service as several `ringstore-lock` replicas on an etcd store
/// (issue 18), real processes beside a `LocalCluster` (whose keys, data
/// directory and connections they use; start the cluster with
/// `startsLock = false`). Each replica listens on a free port P and
/// publishes on P+1, as `ClusterEndpoints` expects; its role is what its
/// Health says (`details["role"]`).
final class ReplicatedLockService: @unchecked Sendable {
    struct Replica {
        let listen: String
        let publish: String
        var process: ServiceProcess?
    }

    let cluster: LocalCluster
    let etcd: EtcdCluster
    let leaderTTL: Int
    private let state: Mutex<[Replica]>
    /// Processes killed or stopped, kept so their logs outlive them (for failure messages).
    private let retired = Mutex<[ServiceProcess]>([])
    /// One Health client per replica, kept for the fixture's life (a DEALER
    /// reconnects by itself to a replica started again on its port).
    private let health: [RPCClient]

    /// `count` replicas (not started) on `etcd`, electing with a lease of `leaderTTL` seconds.
    init(cluster: LocalCluster, etcd: EtcdCluster, count: Int = 3, leaderTTL: Int = 2) throws {
        self.cluster = cluster
        self.etcd = etcd
        self.leaderTTL = leaderTTL
        let replicas = try (0..<count).map { _ in
            let (listen, publish) = try Self.portPair()
            return Replica(listen: listen, publish: publish, process: nil)
        }
        state = Mutex(replicas)
        health = try replicas.map { try cluster.rpc($0.listen, caller: "replica-watch") }
    }

    deinit {
        for client in health { client.close() }
    }

    /// Two free ports P and P+1: a replica's request and event endpoints.
    static func portPair() throws -> (String, String) {
        for _ in 0..<200 {
            let first = FreePort.allocate(), second = FreePort.allocate()
            if second == first &+ 1 { return ("tcp://127.0.0.1:\(first)", "tcp://127.0.0.1:\(second)") }
        }
        throw FixtureError("no two consecutive free ports found")
    }

    var count: Int { state.withLock { $0.count } }
    /// Every replica's request endpoint, in order.
    var endpoints: [String] { state.withLock { $0.map(\.listen) } }
    /// Every replica's event endpoint, in order.
    var eventEndpoints: [String] { state.withLock { $0.map(\.publish) } }
    /// The request endpoints comma-separated, as `ClusterEndpoints(locks:)` and `ringctl --locks` take them.
    var endpointList: String { endpoints.joined(separator: ",") }
    func endpoint(_ index: Int) -> String { state.withLock { $0[index].listen } }
    func process(_ index: Int) -> ServiceProcess? { state.withLock { $0[index].process } }

    /// Starts every replica and waits until one leads.
    func start() async throws {
        for index in 0..<count { try await start(index) }
        _ = try await waitForLeader()
    }

    /// Starts (or restarts) replica `index` on its ports and waits until it answers Health.
    func start(_ index: Int) async throws {
        let replica = state.withLock { $0[index] }
        let process = try ServiceProcess("ringstore-lock", [
            "--listen", replica.listen, "--publish", replica.publish,
            "--data-dir", cluster.dataDirectory.appendingPathComponent("lock-replica-\(index)").path,
            "--store", etcd.storeURL, "--leader-ttl", "\(leaderTTL)",
        ] + cluster.serverSecurity)
        let previous = state.withLock { replicas in
            defer { replicas[index].process = process }
            return replicas[index].process
        }
        if let previous { retired.withLock { $0.append(previous) } }
        try await waitUntil("lock replica \(index + 1) to answer Health", timeout: .seconds(20)) {
            if !process.isRunning { throw FixtureError("lock replica \(index + 1) exited at start:\n\(process.log.suffix(2000))") }
            return await role(index) != nil
        }
    }

    /// Kills replica `index` with `signal` and waits until it has exited.
    func kill(_ index: Int, signal: Int32 = SIGKILL) async throws {
        try await process(index)?.stop(signal: signal)
    }

    /// What replica `index` says it is (`leader`, `follower`), or nil when it does not answer.
    func role(_ index: Int) async -> String? {
        guard process(index)?.isRunning == true else { return nil }
        let reply = try? await health[index].call(LockMethods.health, WireHealthRequest(),
                                                  options: CallOptions(timeout: .milliseconds(500)))
        return reply?.details["role"]
    }

    /// Every replica's role (nil: not answering).
    func roles() async -> [String?] {
        var roles: [String?] = []
        for index in 0..<count { roles.append(await role(index)) }
        return roles
    }

    /// The replica that says it leads, once exactly one of those running does
    /// (and it is not `excluding`); its index.
    func waitForLeader(excluding: Int? = nil, timeout: Duration = .seconds(30)) async throws -> Int {
        var found: Int?
        var last: [String?] = []
        do {
            try await waitUntil("one lock replica to lead", timeout: timeout, interval: .milliseconds(20)) {
                last = await roles()
                let leaders = last.indices.filter { last[$0] == "leader" }
                guard leaders.count == 1, leaders[0] != excluding else { return false }
                found = leaders[0]
                return true
            }
        } catch let timedOut as TimedOut {
            throw FixtureError("\(timedOut); roles \(last)\n\(logTails())")
        }
        return found!
    }

    /// The last lines of every replica's log (current and retired), for failure messages.
    func logTails(_ characters: Int = 1500) -> String {
        let current = state.withLock { $0.compactMap(\.process) }
        return (retired.withLock { $0 } + current).map { process in
            "--- \(process.name) \(process.arguments.prefix(2).joined(separator: " ")) pid \(process.pid):\n\(process.log.suffix(characters))"
        }.joined(separator: "\n")
    }

    /// Stops every replica with SIGTERM.
    func stop() async throws {
        for index in 0..<count where process(index)?.isRunning == true {
            try await kill(index, signal: SIGTERM)
        }
    }
}
