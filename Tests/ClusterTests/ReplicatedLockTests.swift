import Etcd
import Foundation
import RPC
import RingProtocol
import RingstoreClient
import Synchronization
import Testing
import TestKit
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// The lock service replicated on etcd (issue 18), on real processes: three
/// `ringstore-lock` replicas on a three-member etcd, the leader killed with
/// SIGKILL while clients hold and wait for a lock. Mutual exclusion is
/// checked with a log the clients keep themselves (when each believed it
/// held the lock, on this process's one monotonic clock), never with the
/// service's own view.
@Suite(.serialized, .timeLimit(.minutes(5))) struct ReplicatedLockTests {
    static let lockName = "counter"
    /// Well above a failover (about the leader TTL of 2 s plus an election),
    /// so no lease legitimately runs out during these runs.
    static let leaseTTL = Duration.seconds(10)

    @Test func theFencedCounterReachesExactlyItsCountThroughTwoLeaderKillsAndAnEtcdMemberKill() async throws {
        let etcd = try await EtcdCluster.start(size: 3)
        defer { etcd.shutdown() }
        let cluster = try LocalCluster(nodes: 3)
        cluster.startsLock = false
        try await cluster.startAndSettle()
        let lock = try ReplicatedLockService(cluster: cluster, etcd: etcd)
        try await lock.start()
        let context = try ZMQContext()
        defer { context.shutdown() }
        let endpoints = ClusterEndpoints(placement: cluster.placementEndpoint, locks: lock.endpointList,
                                         nodes: (0..<3).map(cluster.nodeAddress))
        let clientCount = 8, rounds = 200, total = clientCount * rounds
        let run = CounterRun()
        let lockClients = try (0..<clientCount).map { index in
            try LockClient(context: cluster.clientContext(context: context), endpoints: endpoints, owner: "client-\(index)")
        }
        let dataClients = try (0..<clientCount).map { index in
            try KeyValueClient(context: cluster.clientContext(context: context), endpoints: endpoints, caller: "client-\(index)")
        }
        let watch = try EventSubscription(context: context, endpoints: lock.eventEndpoints, topics: ["lock"], security: cluster.security)
        let watcher = Task {
            for await received in watch.events where ["expired", "lost"].contains(received.event.type) {
                let details = received.event.lock
                run.leaseEvents.withLock { $0.append("\(received.event.type) \(details.name) owner \(details.owner) token \(details.token): \(details.reason)") }
            }
        }
        defer {
            watch.close()
            watcher.cancel()
            for client in lockClients { client.close() }
            for client in dataClients { client.close() }
        }

        let started = run.clock.now
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<clientCount {
                    group.addTask {
                        let others = lockClients.indices.filter { $0 != index }.map { (index: $0, client: lockClients[$0]) }
                        await run.increment(rounds: rounds, locks: lockClients[index], data: dataClients[index], others: others)
                        run.finished.withLock { _ = $0.insert(index) }
                    }
                }
                group.addTask { try await Self.faults(run: run, lock: lock, etcd: etcd, total: total) }
                try await group.waitForAll()
            }
        } catch {
            Issue.record("the run failed after \(run.writeCount) increments: \(error)\n\(lock.logTails())")
            throw error
        }
        let elapsed = run.clock.now - started

        // Every replica runs again, one of them leads.
        _ = try await lock.waitForLeader()
        let reader = try KeyValueClient(context: cluster.clientContext(context: context), endpoints: endpoints, caller: "checker")
        defer { reader.close() }
        let final = try await reader.get(key: CounterRun.key)
        let (holds, writes) = run.log.withLock { ($0.holds, $0.writes) }
        Self.report(run: run, faults: run.faults.withLock { $0 }, writes: writes, holds: holds.count, elapsed: elapsed)

        #expect(run.problems.withLock { $0 }.isEmpty, "\(run.problems.withLock { $0 })")
        #expect(run.leaseEvents.withLock { $0 }.isEmpty,
                "a lease expired or was lost during the run, which the \(Self.leaseTTL) ttl is meant to rule out: the run cannot vouch for mutual exclusion: \(run.leaseEvents.withLock { $0 })")
        // No two sessions held the lock at once: in token order, each hold ended before the next began.
        #expect(Self.overlaps(holds).isEmpty, "the lock was held by two sessions at once: \(Self.overlaps(holds).prefix(10))")
        #expect(Set(holds.map(\.token)).count == holds.count, "a token was granted twice")
        // The counter: exactly one increment per acknowledged write, 1...total in token order.
        #expect(String(decoding: final.value, as: UTF8.self) == "\(total)")
        #expect(writes.count == total)
        let byToken = writes.sorted { $0.token < $1.token }
        #expect(byToken.map(\.value) == Array(1...total), "values in token order: \(Self.firstMismatch(byToken.map(\.value)))")
        // In the order the writes were acknowledged, tokens strictly increase.
        let byTime = writes.sorted { $0.at < $1.at }.map(\.token)
        #expect(zip(byTime, byTime.dropFirst()).allSatisfy { $0 < $1 }, "tokens along the writes' order go back somewhere")
        #expect(run.refused.load(ordering: .relaxed) == 0, "fenced writes refused: a holder wrote after another was granted the lock")
        try await lock.stop()
        try await cluster.stop()
    }

    /// Two waiters queued at the leader when it is killed keep their order at
    /// the next one, which restores the queue from etcd. Waiter A is a ringctl
    /// process, stopped (SIGSTOP) while the leader changes, so that B's client
    /// certainly sends its acquire to the new leader first: only the restored
    /// queue can then put A before B. The holder releases through the new
    /// leader; A gets the lock, then B.
    @Test func waitersQueuedAtAKilledLeaderAreGrantedInTheirOrderByTheNextLeader() async throws {
        let etcd = try await EtcdCluster.start(size: 3)
        defer { etcd.shutdown() }
        // Only the keys and connections of a cluster: the lock replicas are the whole service here.
        let cluster = try LocalCluster(nodes: 0)
        let lock = try ReplicatedLockService(cluster: cluster, etcd: etcd)
        try await lock.start()
        let context = try ZMQContext()
        defer { context.shutdown() }
        func client(_ owner: String) throws -> LockClient {
            try LockClient(context: cluster.clientContext(context: context), endpoint: lock.endpointList, owner: owner)
        }
        let holder = try client("holder"), waiterB = try client("waiter-b"), observer = try client("observer")
        defer { for client in [holder, waiterB, observer] { client.close() } }
        let name = "queued"
        func queue() async -> [String]? { (try? await observer.status(name))?.waiters.map(\.owner) }

        let held = try await holder.acquire(name, ttl: Self.leaseTTL)
        let waiterA = try ServiceProcess("ringctl", ["lock", "acquire", name, "--ttl", "10", "--wait", "60", "--owner", "waiter-a",
                                                     "--locks", lock.endpointList] + cluster.ringctlCredentials(as: "client"))
        try await waitUntil("A to queue", timeout: .seconds(20)) { await queue() == ["waiter-a"] }
        let grantedB = Latch()
        let acquireB = Task { () -> Result<LockGrant, RPCError> in
            defer { grantedB.set() }
            do throws(RPCError) { return .success(try await waiterB.acquire(name, ttl: Self.leaseTTL, wait: .seconds(60))) } catch { return .failure(error) }
        }
        try await waitUntil("B to queue behind A", timeout: .seconds(20)) { await queue() == ["waiter-a", "waiter-b"] }

        kill(waiterA.pid, SIGSTOP)
        try await waitUntil("A to stop") {
            let stat = (try? String(contentsOfFile: "/proc/\(waiterA.pid)/stat", encoding: .utf8)) ?? ""
            return stat.split(separator: " ").dropFirst(2).first == "T"
        }
        let old = try await lock.waitForLeader()
        try await lock.kill(old)
        let next = try await lock.waitForLeader(excluding: old)
        // B's client sends its acquire again; A's cannot yet.
        var restored: [String] = []
        try await waitUntil("B's place at the new leader", timeout: .seconds(20)) {
            restored = await queue() ?? []
            return restored.contains("waiter-b")
        }
        #expect(restored == ["waiter-a", "waiter-b"], "the queue at the new leader (replica \(next + 1))")
        let status = try await observer.status(name)
        #expect(status.holder?.owner == "holder" && status.holder?.token == held.token, "the new leader kept the holder: \(status)")
        kill(waiterA.pid, SIGCONT)
        try await lock.start(old)

        try await holder.release(name, token: held.token)
        try await waitUntil("the lock to pass on", timeout: .seconds(30)) { !waiterA.isRunning || grantedB.isSet }
        try #require(!waiterA.isRunning && !grantedB.isSet, "B was granted the lock before A")
        #expect(try await waiterA.waitForExit() == 0, "\(waiterA.log)")
        let tokenA = try #require(waiterA.log.split(separator: "\n").compactMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }.last,
                                  "A's token in: \(waiterA.log)")
        #expect(tokenA > held.token)
        let afterA = try await observer.status(name)
        #expect(afterA.holder?.owner == "waiter-a" && afterA.holder?.token == tokenA && afterA.waiters.map(\.owner) == ["waiter-b"],
                "\(afterA)")

        // A's lease (same owner, same key: the same session) is released from here; B gets the lock.
        let releaseA = try client("waiter-a")
        defer { releaseA.close() }
        try await releaseA.release(name, token: tokenA)
        let grantB = try await acquireB.value.get()
        #expect(grantB.owner == "waiter-b" && grantB.token > tokenA)
        try await waiterB.release(name, token: grantB.token)
        try await lock.stop()
    }

    /// The faults, each after some progress: the lock leader killed (-9) while
    /// a client holds the lock, then etcd's raft leader killed, then the lock
    /// leader killed again while that etcd member is still down; the killed
    /// processes are started again.
    static func faults(run: CounterRun, lock: ReplicatedLockService, etcd: EtcdCluster, total: Int) async throws {
        try await run.waitForIncrements(total * 3 / 16)
        try await killLockLeader(run: run, lock: lock, label: "lock leader kill 1")

        try await run.waitForIncrements(total * 7 / 16)
        let etcdClient = try EtcdClient(endpoints: etcd.endpoints, timeout: .seconds(2))
        let member = try etcd.leaderIndex(client: etcdClient)
        let leaderBefore = try await lock.waitForLeader()
        let at = run.clock.now
        let writesBefore = run.writeCount
        try await etcd.kill(member)

        try await run.waitForIncrements(total * 10 / 16)
        let leaderAfter = try await lock.waitForLeader()
        let moved = leaderAfter == leaderBefore ? "stayed replica \(leaderBefore + 1)" : "moved from replica \(leaderBefore + 1) to \(leaderAfter + 1)"
        run.faults.withLock {
            $0.append(CounterRun.Fault(what: "etcd member \(member + 1) of 3 (its raft leader) killed -9 and left down until after the next fault; the lock leader \(moved)",
                                       at: at, writesBefore: writesBefore, leaderSeen: nil, pinnedToken: nil))
        }
        try await killLockLeader(run: run, lock: lock, label: "lock leader kill 2 (with etcd on 2 of 3 members)")
        try await etcd.restart(member)
    }

    /// Pins the next client that gets the lock (it keeps holding across the
    /// failover), kills the lock leader with SIGKILL, waits until another
    /// replica leads, and starts the killed one again as a follower.
    static func killLockLeader(run: CounterRun, lock: ReplicatedLockService, label: String) async throws {
        run.pin.withLock { $0 = CounterRun.Pin(wanted: true) }
        try await waitUntil("a client to hold the lock across the failover", timeout: .seconds(60)) {
            run.pin.withLock { $0.token != nil }
        }
        let leader = try await lock.waitForLeader()
        let at = run.clock.now
        let writesBefore = run.writeCount
        try await lock.kill(leader)
        let next = try await lock.waitForLeader(excluding: leader, timeout: .seconds(30))
        let seen = run.clock.now - at
        let pinnedToken = run.pin.withLock { pin in
            pin.newLeader = lock.endpoint(next)
            return pin.token
        }
        run.faults.withLock {
            $0.append(CounterRun.Fault(what: "\(label): replica \(leader + 1) killed -9, replica \(next + 1) took over",
                                       at: at, writesBefore: writesBefore, leaderSeen: seen, pinnedToken: pinnedToken))
        }
        try await lock.start(leader)
        try await waitUntil("the pinned holder to go on", timeout: .seconds(30)) { run.pin.withLock { $0.done } }
    }

    /// Pairs of holds, in token order, where the later began before the earlier ended.
    static func overlaps(_ holds: [CounterRun.Hold]) -> [String] {
        let ordered = holds.sorted { $0.token < $1.token }
        return zip(ordered, ordered.dropFirst()).compactMap { earlier, later in
            guard later.start <= earlier.end else { return nil }
            return "\(earlier.owner) held token \(earlier.token) until \(seconds(later.start.duration(to: earlier.end))) after \(later.owner) got token \(later.token)"
        }
    }

    static func firstMismatch(_ values: [Int]) -> String {
        guard let index = values.indices.first(where: { values[$0] != $0 + 1 }) else { return "all in place" }
        return "position \(index + 1) holds \(values[index]), around it \(Array(values[max(0, index - 3)..<min(values.count, index + 4)]))"
    }

    static func report(run: CounterRun, faults: [CounterRun.Fault], writes: [CounterRun.Write], holds: Int, elapsed: Duration) {
        var lines = ["ReplicatedLockTests: \(writes.count) increments by \(holds) holds in \(seconds(elapsed)); "
                     + "fenced writes refused \(run.refused.load(ordering: .relaxed)), releases sent again \(run.releaseRetries.load(ordering: .relaxed)), "
                     + "acquires that failed \(run.acquireErrors.withLock { $0.count })"]
        let times = writes.map(\.at).sorted()
        for (index, fault) in faults.enumerated() {
            let after = times.first { $0 > fault.at }.map { seconds(fault.at.duration(to: $0)) } ?? "never"
            var line = "  \(fault.what), after \(fault.writesBefore) increments: first increment \(after) after the kill"
            if let seen = fault.leaderSeen { line += ", new leader seen after \(seconds(seen))" }
            if let pinned = fault.pinnedToken {
                let fresh = writes.filter { $0.token > pinned }.map(\.at).min().map { seconds(fault.at.duration(to: $0)) } ?? "never"
                line += ", first increment under a grant made after the kill \(fresh) (the increments include the pinned holder's \(seconds(CounterRun.slowHolderWork)) of work)"
            }
            // The outage: the longest pause between increments from the last one before the kill
            // to 15 s after it or the next fault, whichever comes first.
            let end = min(fault.at + .seconds(15), index + 1 < faults.count ? faults[index + 1].at : fault.at + .seconds(15))
            let window = times.filter { $0 > fault.at && $0 < end }
            let from = times.last { $0 <= fault.at }.map { [$0] } ?? []
            if let gap = zip(from + window, window).max(by: { $0.0.duration(to: $0.1) < $1.0.duration(to: $1.1) }) {
                line += "; longest pause between increments \(seconds(gap.0.duration(to: gap.1))), ending \(seconds(fault.at.duration(to: gap.1))) after the kill"
            }
            lines.append(line)
        }
        lines += run.pinObservations.withLock { $0 }.map { "  pinned holder: \($0)" }
        lines += run.acquireErrors.withLock { $0 }.prefix(10).map { "  acquire failed: \($0)" }
        print(lines.joined(separator: "\n"))
    }

    /// Set once, read from any task.
    final class Latch: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }

    static func seconds(_ duration: Duration) -> String {
        let (whole, fraction) = duration.components
        return String(format: "%.2f s", Double(whole) + Double(fraction) / 1e18)
    }
}
