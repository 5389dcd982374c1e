import Etcd
import Foundation
import Glibc
import Synchronization

/// Real etcd members for the tests: `/usr/bin/etcd` (Debian's etcd-server,
/// which `make deps` installs; `ETCD_BIN` overrides the path) on free
/// loopback ports with a temporary data directory each. Members are killed
/// and the directories removed by `shutdown()`, and by `deinit` if a test
/// failed before it.
public final class EtcdCluster: @unchecked Sendable {
    struct Member {
        let name: String
        let clientPort: UInt16
        let peerPort: UInt16
        let dataDirectory: URL
        var process: ServiceProcess?
    }

    public static var binary: String { ProcessInfo.processInfo.environment["ETCD_BIN"] ?? "/usr/bin/etcd" }

    private let lock = Mutex<[Member]>([])
    public let root: URL
    /// The address members listen on (loopback unless a test gives another, e.g. a bridge for network namespaces).
    public let host: String
    private let token: String

    private init(size: Int, host: String) throws {
        self.host = host
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw FixtureError("\(Self.binary) is missing: the etcd tests need etcd 3.4; `make deps` installs it (Debian's etcd-server)")
        }
        let id = UUID().uuidString.prefix(8)
        token = "ringstore-test-\(id)"
        root = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-etcd-\(id)", isDirectory: true)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let members = (1...size).map { index in
            Member(name: "m\(index)", clientPort: FreePort.allocate(), peerPort: FreePort.allocate(),
                   dataDirectory: root.appendingPathComponent("m\(index)", isDirectory: true), process: nil)
        }
        lock.withLock { $0 = members }
    }

    /// Starts `size` members as one cluster and waits until every one is healthy.
    public static func start(size: Int = 1, host: String = "127.0.0.1") async throws -> EtcdCluster {
        let cluster = try EtcdCluster(size: size, host: host)
        do {
            for index in 0..<size { try cluster.launch(index) }
            for index in 0..<size { try await cluster.waitHealthy(index) }
        } catch {
            cluster.shutdown()
            throw error
        }
        return cluster
    }

    public var size: Int { lock.withLock { $0.count } }
    /// Every member's client address, `127.0.0.1:port`.
    public var endpoints: [String] { lock.withLock { members in members.map { "\(host):\($0.clientPort)" } } }
    /// `etcd://` and every member, as `--store` takes them.
    public var storeURL: String { "etcd://" + endpoints.joined(separator: ",") }
    public func endpoint(_ index: Int) -> String { endpoints[index] }
    public func clientPort(_ index: Int) -> UInt16 { lock.withLock { $0[index].clientPort } }

    private func arguments(_ index: Int) -> [String] {
        let members = lock.withLock { $0 }
        let member = members[index]
        let initial = members.map { "\($0.name)=http://\(host):\($0.peerPort)" }.joined(separator: ",")
        return [
            "--name", member.name,
            "--data-dir", member.dataDirectory.path,
            "--listen-client-urls", "http://\(host):\(member.clientPort)",
            "--advertise-client-urls", "http://\(host):\(member.clientPort)",
            "--listen-peer-urls", "http://\(host):\(member.peerPort)",
            "--initial-advertise-peer-urls", "http://\(host):\(member.peerPort)",
            "--initial-cluster", initial,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", token,
            // Fast elections, and so a minimum lease TTL under a second.
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]
    }

    private func launch(_ index: Int) throws {
        let process = try ServiceProcess(Self.binary, arguments(index))
        lock.withLock { $0[index].process = process }
    }

    /// Waits until member `index` answers `/health` with true (it has a leader and serves reads).
    public func waitHealthy(_ index: Int, timeout: Duration = .seconds(15)) async throws {
        let (port, process) = lock.withLock { ($0[index].clientPort, $0[index].process) }
        do {
            try await waitUntil("etcd member \(index + 1) on port \(port) to be healthy", timeout: timeout, interval: .milliseconds(50)) {
                if let process, !process.isRunning {
                    throw FixtureError("etcd member \(index + 1) exited while starting; its log ends:\n\(process.log.suffix(2000))")
                }
                let fetched = try? HTTPFetch.get(host: host, port: port, "/health", headers: ["Connection": "close"], timeout: .seconds(1))
                return fetched?.body.contains("\"health\":\"true\"") ?? false
            }
        } catch let timedOut as TimedOut {
            throw FixtureError("\(timedOut); its log ends:\n\(process?.log.suffix(2000) ?? "")")
        }
    }

    /// Sends `signal` to member `index` and waits until it has exited.
    public func kill(_ index: Int, signal: Int32 = SIGKILL) async throws {
        let process = lock.withLock { $0[index].process }
        try await process?.stop(signal: signal, timeout: .seconds(10))
    }

    /// Starts member `index` again on its data directory and ports, and waits until it is healthy.
    public func restart(_ index: Int) async throws {
        try launch(index)
        try await waitHealthy(index)
    }

    /// The index of the member the others follow as raft leader.
    public func leaderIndex(client: EtcdClient) throws -> Int {
        var ids: [UInt64] = []
        var leader: UInt64 = 0
        for endpoint in endpoints {
            let status = try client.status(of: endpoint)
            ids.append(status.memberID)
            leader = status.leaderID
        }
        guard let index = ids.firstIndex(of: leader) else { throw FixtureError("no member is the leader \(leader) of \(ids)") }
        return index
    }

    /// Kills every member and removes the data directories.
    public func shutdown() {
        let processes = lock.withLock { members in
            defer { for index in members.indices { members[index].process = nil } }
            return members.compactMap(\.process)
        }
        for process in processes where process.isRunning {
            Glibc.kill(process.pid, SIGKILL)
        }
        // ServiceProcess's deinit reaps the processes; wait here so the directories are free.
        let deadline = ContinuousClock.now + .seconds(10)
        while processes.contains(where: \.isRunning) && ContinuousClock.now < deadline { usleep(10_000) }
        try? FileManager.default.removeItem(at: root)
    }

    deinit { shutdown() }
}

