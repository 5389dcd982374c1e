import Foundation
import RPC
import Ring
import RingProtocol
import Synchronization
import TestKit
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// What the fault-injection workload and checker need of a cluster: the
/// loopback `LocalCluster` and the network-namespace `NetnsCluster` both are one.
protocol FaultCluster: AnyObject, Sendable {
    /// The ZeroMQ context the test's clients use (for namespaces: one whose I/O
    /// threads live in the namespace that reaches the cluster).
    var context: ZMQContext { get }
    /// The test's CURVE credentials (admin's); nil for a cluster without CURVE.
    var security: ClientSecurity? { get }
    /// An RPC client of `endpoint` over `context`, with `security`.
    func rpc(_ endpoint: String, caller: String) throws -> RPCClient
    var placementEndpoint: String { get }
    var nodeCount: Int { get }
    func nodeEndpoint(_ index: Int) -> String
    func nodeAddress(_ index: Int) -> String
    func nodeProcess(_ index: Int) -> ServiceProcess
    /// Restarts node `index` on its data directory and waits for its Health.
    func restartNode(_ index: Int) async throws
    func members() async throws -> (epoch: UInt64, members: [String: WireMember])
}

extension LocalCluster: FaultCluster {
    var nodeCount: Int { nodeEndpoints.count }
    func nodeEndpoint(_ index: Int) -> String { nodeEndpoints[index] }
    func nodeProcess(_ index: Int) -> ServiceProcess { node(index) }
    func restartNode(_ index: Int) async throws { try await startNode(index) }
}

extension FaultCluster {
    /// Sends `signal` to node `index` without waiting (SIGSTOP, SIGCONT).
    func signalNode(_ index: Int, _ signal: Int32) {
        let process = nodeProcess(index)
        if process.isRunning { kill(process.pid, signal) }
    }

    /// Placement's ring: its members' addresses and weights, and the density.
    func placementRing() async throws -> WireRingInfo {
        let client = try rpc(placementEndpoint, caller: "fault-test")
        defer { client.close() }
        return try await client.call(PlacementMethods.getRing, WireGetRingRequest()).ring
    }

    /// Waits until placement lists `addresses` as up members.
    func waitUntilUp(_ addresses: [String], timeout: Duration = .seconds(30)) async throws {
        try await waitUntil("\(addresses) to be up", timeout: timeout, interval: .milliseconds(100)) {
            guard let members = try? await members().members else { return false }
            return addresses.allSatisfy { members[$0]?.state == .up }
        }
    }
}

/// A writer and two readers running puts and gets through different
/// coordinators while a nemesis injects faults, every operation recorded for
/// the checker; then convergence (anti-entropy Repair on every node when the
/// nodes implement it, read repair at R=3 otherwise), the replica comparison
/// and the final reads.
final class FaultWorkload: Sendable {
    let history = OperationHistory()
    let faults: FaultLog
    let keys: [String]
    let nemesis: String
    private let cluster: any FaultCluster
    private let clients: [RPCClient]
    private let seed: UInt64
    private let stopped = Atomic<Bool>(false)
    private let stoppedAt = Mutex<ContinuousClock.Instant?>(nil)
    private let acknowledged = Atomic<Int>(0)
    private let tasks = Mutex<[Task<Void, Never>]>([])
    /// Per-call deadline of the workload's calls: a put or get through a live
    /// coordinator answers in milliseconds, whatever one replica does.
    static let callTimeout: Duration = .seconds(2)

    init(cluster: any FaultCluster, nemesis: String, keyCount: Int = 300, seed: UInt64) throws {
        self.cluster = cluster
        self.nemesis = nemesis
        self.seed = seed
        faults = FaultLog(history: history)
        keys = (0..<keyCount).map { "fault-\(nemesis)-\($0)" }
        clients = try (0..<cluster.nodeCount).map { index in
            try cluster.rpc(cluster.nodeEndpoint(index), caller: "fault-workload")
        }
    }

    deinit {
        for task in tasks.withLock({ $0 }) { task.cancel() }
        for client in clients { client.close() }
    }

    func close() {
        for client in clients { client.close() }
    }

    // MARK: The workload

    /// Starts the writer and the two readers.
    func start() {
        let writer = Task { [self] in await write() }
        let readers = (1...2).map { number in Task { [self] in await read(number) } }
        tasks.withLock { $0 = [writer] + readers }
    }

    /// Stops the workload and waits for its calls in flight.
    func stop() async {
        stopped.store(true, ordering: .relaxed)
        for task in tasks.withLock({ $0 }) { await task.value }
        stoppedAt.withLock { $0 = $0 ?? ContinuousClock().now }
    }

    /// Waits until the workload made `count` more acknowledged writes (or `timeout` passed).
    func waitForProgress(writes count: Int, timeout: Duration = .seconds(20)) async throws {
        let base = acknowledgedWrites
        try await waitUntil("\(count) more acknowledged writes", timeout: timeout, interval: .milliseconds(20)) {
            acknowledgedWrites >= base + count
        }
    }

    var acknowledgedWrites: Int { acknowledged.load(ordering: .relaxed) }

    /// Coordinators are taken in turn; one whose call just failed is skipped
    /// for a second, as a real client backs off from a dead node.
    private struct Rotation {
        var next: Int
        var avoidUntil: [ContinuousClock.Instant?]

        init(start: Int, count: Int) {
            next = start
            avoidUntil = Array(repeating: nil, count: count)
        }

        mutating func pick() -> Int {
            let now = ContinuousClock().now
            for _ in avoidUntil.indices {
                let candidate = next % avoidUntil.count
                next += 1
                if let until = avoidUntil[candidate], until > now { continue }
                return candidate
            }
            defer { next += 1 }
            return next % avoidUntil.count
        }

        mutating func failed(_ node: Int) { avoidUntil[node] = ContinuousClock().now + .seconds(1) }
    }

    private func write() async {
        var generator = SeededGenerator(seed: seed)
        var rotation = Rotation(start: 0, count: clients.count)
        var sequence = 0
        while !stopped.load(ordering: .relaxed) {
            sequence += 1
            let key = keys[Int(generator.next() % UInt64(keys.count))]
            let value = "writer-\(sequence)"
            let node = rotation.pick()
            let id = history.invoke("writer", .put, key: key, value: value, node: node)
            let request = WirePutRequest.with {
                $0.key = Data(key.utf8)
                $0.value = Data(value.utf8)
            }
            do {
                _ = try await clients[node].call(StorageMethods.put, request, options: CallOptions(timeout: Self.callTimeout, maxAttempts: 1))
                history.complete(id, .ok)
                acknowledged.add(1, ordering: .relaxed)
            } catch {
                // Never sent, or refused before anything was written: certainly not
                // applied. Anything else (a timeout, too few acknowledgements) may
                // have reached some replicas.
                let certain = error.neverSent || error.code == .invalidArgument
                history.complete(id, certain ? .failed : .unknown, error: error.description)
                rotation.failed(node)
            }
        }
    }

    private func read(_ number: Int) async {
        var generator = SeededGenerator(seed: seed &+ UInt64(number) &* 0x9E37_79B9)
        var rotation = Rotation(start: number, count: clients.count)
        let process = "reader-\(number)"
        while !stopped.load(ordering: .relaxed) {
            let key = keys[Int(generator.next() % UInt64(keys.count))]
            let node = rotation.pick()
            let id = history.invoke(process, .get, key: key, node: node)
            let request = WireGetRequest.with { $0.key = Data(key.utf8) }
            do {
                let reply = try await clients[node].call(StorageMethods.get, request,
                                                         options: CallOptions(timeout: Self.callTimeout, maxAttempts: 1))
                history.complete(id, .ok, read: reply.found ? String(decoding: reply.value, as: UTF8.self) : nil)
            } catch {
                history.complete(id, .failed, error: error.description)
                rotation.failed(node)
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    // MARK: Convergence and the check

    /// Anti-entropy when the nodes implement Repair (on every node), read
    /// repair otherwise (a get at R=3 of every key); returns what ran.
    /// `useRepair` turns false when a node answers UNIMPLEMENTED.
    private func convergenceStep(useRepair: inout Bool) async -> String {
        if useRepair {
            var pushed: UInt64 = 0, pulled: UInt64 = 0
            var failures: [String] = []
            let clock = ContinuousClock()
            let began = clock.now
            for (index, client) in clients.enumerated() {
                switch await client.result(StorageMethods.repair, WireRepairRequest(), options: CallOptions(timeout: .seconds(60))) {
                case .success(let reply):
                    pushed += reply.rowsPushed
                    pulled += reply.rowsPulled
                case .failure(let error) where error.code == .unimplemented:
                    useRepair = false
                case .failure(let error):
                    failures.append("node \(index): \(error)")
                }
                if !useRepair { break }
            }
            let failed = failures.isEmpty ? "" : "; Repair failed on \(failures.joined(separator: ", "))"
            if !useRepair { return await readRepair() + " (the nodes answer Repair with UNIMPLEMENTED)" }
            return "anti-entropy (Repair on every node: \(pushed) rows pushed, \(pulled) pulled, "
                + "\(CheckReport.seconds(clock.now - began))\(failed))"
        }
        return await readRepair()
    }

    /// A get at R=3 of every key: the coordinator repairs the replicas behind.
    private func readRepair() async -> String {
        await forEachKey { [self] index, key in
            let request = WireGetRequest.with {
                $0.key = Data(key.utf8)
                $0.quorum.r = 3
            }
            _ = try? await clients[index % clients.count].call(StorageMethods.get, request, options: CallOptions(timeout: .seconds(5)))
        }
        return "read repair (a get at R=3 of every key)"
    }

    /// Runs `body` for every key, 16 at a time.
    private func forEachKey(_ body: @escaping @Sendable (Int, String) async -> Void) async {
        let keys = self.keys
        await withTaskGroup(of: Void.self) { group in
            for (index, key) in keys.enumerated() {
                if index >= 16 { await group.next() }
                group.addTask { await body(index, key) }
            }
        }
    }

    /// The keys whose replicas (on placement's current ring) hold different versions.
    func divergentKeys() async throws -> [String] {
        let info = try await cluster.placementRing()
        let ring = try HashRing(members: info.members.map { try RingMember(address: $0.address, weight: Int(max(1, $0.weight))) },
                                density: Int(info.density == 0 ? UInt32(HashRing.ketamaDensity) : info.density))
        let replicas = Int(info.replicas == 0 ? 3 : info.replicas)
        let indexByAddress = Dictionary(uniqueKeysWithValues: (0..<cluster.nodeCount).map { (cluster.nodeAddress($0), $0) })
        let divergent = Mutex<[String]>([])
        let clients = self.clients
        let owners = try keys.map { key in try ring.preferenceList(forKey: key, replicas: replicas).map(\.address) }
        await forEachKey { position, key in
            var versions: [String] = []
            for address in owners[position] {
                guard let index = indexByAddress[address] else {
                    versions.append("\(address): not a node of this cluster")
                    continue
                }
                let request = WireReplicaReadRequest.with { $0.key = Data(key.utf8) }
                switch await clients[index].result(StorageMethods.replicaRead, request, options: CallOptions(timeout: .seconds(5))) {
                case .success(let reply):
                    versions.append(reply.found ? "\(reply.record.version.timestamp).\(reply.record.version.writer)" : "absent")
                case .failure(let error):
                    versions.append("error \(error.code.name)")
                }
            }
            if Set(versions).count != 1 || versions.contains(where: { $0.hasPrefix("error") || $0.contains("not a node") }) {
                divergent.withLock { $0.append("\(key): \(versions.joined(separator: ", "))") }
            }
        }
        return divergent.withLock { $0 }.sorted()
    }

    /// Polls the replicas `polls` times, 200 ms apart, until they agree; returns the keys that still differ.
    private func pollDivergence(_ polls: Int) async throws -> [String] {
        var divergent: [String] = []
        for poll in 0..<polls {
            if poll > 0 { try await Task.sleep(for: .milliseconds(200)) }
            divergent = try await divergentKeys()
            if divergent.isEmpty { break }
        }
        return divergent
    }

    /// After the nemesis healed everything and the workload stopped: converge,
    /// compare replicas, read every key at R=2 and R=3, and check the history.
    ///
    /// The replicas are compared first as they are (hints, read repair and the
    /// last writes' third copies may have made them identical already), then
    /// after a convergence step (Repair on every node, or a get at R=3 of every
    /// key), repeated until they agree or `timeout` passes. The time to converge
    /// is from the end of the last fault to the first comparison that agreed.
    func convergeAndCheck(timeout: Duration = .seconds(60)) async throws -> CheckReport {
        let clock = ContinuousClock()
        let lastFault = history.start + (faults.lastFaultEnd ?? history.now())
        let started = stoppedAt.withLock { $0 } ?? clock.now
        var report = CheckReport()
        report.nemesis = nemesis
        report.faults = faults.count
        report.faultTimeline = faults.all.map { fault in
            "\(fault.what) \(CheckReport.seconds(fault.began))-\(fault.healed.map(CheckReport.seconds) ?? "never healed")"
        }.joined(separator: "; ")
        func converged() {
            guard report.convergeTime == nil else { return }
            report.convergeTime = clock.now - lastFault
            report.convergenceStepTime = clock.now - started
        }
        var methods: [String] = []
        var divergent = try await pollDivergence(10)
        if divergent.isEmpty {
            converged()
            methods.append("none needed (hinted handoff and read repair had made the replicas identical)")
        }
        // RINGSTORE_FAULT_CONVERGENCE=read-repair checks the fallback path even where Repair exists.
        let readRepairOnly = ProcessInfo.processInfo.environment["RINGSTORE_FAULT_CONVERGENCE"] == "read-repair"
        var useRepair = !readRepairOnly
        let deadline = clock.now + timeout
        repeat {
            methods.append(await convergenceStep(useRepair: &useRepair))
            divergent = try await pollDivergence(10)
            if divergent.isEmpty { converged() }
        } while !divergent.isEmpty && clock.now < deadline
        report.convergenceMethod = methods.joined(separator: ", then ")
        report.divergentKeys = divergent
        report.keysCompared = keys.count
        try await finalReads()
        Checker.check(history.snapshot, into: &report)
        report.duration = history.now()
        return report
    }

    /// Every key read at R=2 and at R=3, through every coordinator in turn.
    private func finalReads() async throws {
        for r: UInt32 in [2, 3] {
            await forEachKey { [self] index, key in
                let node = (index + Int(r)) % clients.count
                let id = history.invoke("final-r\(r)", .get, key: key, node: node)
                let request = WireGetRequest.with {
                    $0.key = Data(key.utf8)
                    $0.quorum.r = r
                }
                switch await clients[node].result(StorageMethods.get, request, options: CallOptions(timeout: .seconds(5))) {
                case .success(let reply):
                    history.complete(id, .ok, read: reply.found ? String(decoding: reply.value, as: UTF8.self) : nil)
                case .failure(let error):
                    history.complete(id, .failed, error: error.description)
                }
            }
        }
    }
}
