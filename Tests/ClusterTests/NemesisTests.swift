import Foundation
import RPC
import RingProtocol
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// Jepsen-style fault injection on real processes: while a writer and two
/// readers run through different coordinators, a nemesis kills, pauses or
/// partitions; then everything heals, replicas converge, and the checker
/// verifies that no acknowledged write was lost, no read returned a value never
/// written (nor missed a write acknowledged before it began), and the replicas
/// hold identical data. Seeds are fixed (`RINGSTORE_FAULT_SEED` overrides).
@Suite(.serialized) struct NemesisTests {
    static var seed: UInt64 {
        ProcessInfo.processInfo.environment["RINGSTORE_FAULT_SEED"].flatMap { UInt64($0) } ?? 0x5EED_F417
    }

    /// Runs the workload around `nemesis`, then heals, converges, checks and records the report.
    static func run(_ name: String, on cluster: any FaultCluster, seed: UInt64 = seed,
                    nemesis: (FaultWorkload) async throws -> Void) async throws {
        let workload = try FaultWorkload(cluster: cluster, nemesis: name, seed: seed)
        defer { workload.close() }
        workload.start()
        do {
            try await workload.waitForProgress(writes: 50)
            try await nemesis(workload)
            // The workload keeps going a little after the last fault healed.
            try await workload.waitForProgress(writes: 20)
        } catch {
            await workload.stop()
            throw error
        }
        await workload.stop()
        try await cluster.waitUntilUp((0..<cluster.nodeCount).map(cluster.nodeAddress))
        let report = try await workload.convergeAndCheck()
        print(report)
        #expect(report.faults > 0)
        #expect(report.putsOK > 50, "too few acknowledged writes to mean anything\n\(report)")
        #expect(report.lostWrites.isEmpty, "\(report)")
        #expect(report.phantomReads.isEmpty, "\(report)")
        #expect(report.staleReads.isEmpty, "\(report)")
        #expect(report.failedFinalReads.isEmpty, "\(report)")
        #expect(report.divergentKeys.isEmpty, "\(report)")
        #expect(report.convergeTime != nil, "\(report)")
    }

    @Test(.timeLimit(.minutes(2)))
    func killNineRandomNodesAndRestartThem() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        try await Self.run("kill-9", on: cluster) { workload in
            var generator = SeededGenerator(seed: Self.seed)
            for _ in 0..<3 {
                let victim = Int(generator.next() % 3)
                let fault = workload.faults.inject("kill -9 node \(victim)")
                try await cluster.node(victim).stop(signal: SIGKILL)
                // Writes and reads keep succeeding through the other coordinators.
                try await workload.waitForProgress(writes: 20)
                try await Task.sleep(for: .milliseconds(500 + Int(generator.next() % 2000)))
                try await cluster.startNode(victim)
                workload.faults.healed(fault)
                try await workload.waitForProgress(writes: 20)
            }
        }
        try await cluster.stop()
    }

    @Test(.timeLimit(.minutes(2)))
    func pauseANodePastTheFailureTimeoutThenResumeIt() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        var paused: Int?
        defer { if let paused { cluster.signalNode(paused, SIGCONT) } }
        try await Self.run("sigstop", on: cluster) { workload in
            var generator = SeededGenerator(seed: Self.seed ^ 0x57)
            for _ in 0..<2 {
                let victim = Int(generator.next() % 3)
                let fault = workload.faults.inject("SIGSTOP node \(victim)")
                cluster.signalNode(victim, SIGSTOP)
                paused = victim
                try await workload.waitForProgress(writes: 20)
                // Past the failure timeout: placement marks it down.
                try await cluster.waitForMembers([cluster.nodeAddress(victim)], state: .down, timeout: .seconds(15))
                try await workload.waitForProgress(writes: 20)
                cluster.signalNode(victim, SIGCONT)
                paused = nil
                workload.faults.healed(fault)
                try await cluster.waitUntilUp([cluster.nodeAddress(victim)])
                try await workload.waitForProgress(writes: 20)
            }
        }
        try await cluster.stop()
    }

    @Test(.timeLimit(.minutes(2)))
    func killPlacementAndTheLockServiceAndRestartThem() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let lockClient = try cluster.rpc(cluster.lockEndpoint, caller: "fault-test")
        defer { lockClient.close() }
        let first = try await lockClient.call(LockMethods.acquire, WireLockAcquireRequest.with {
            $0.name = "nemesis"
            $0.owner = "before"
            $0.ttlMillis = 500
        })
        try await Self.run("control-plane", on: cluster) { workload in
            for signal in [SIGKILL, SIGTERM] {
                let fault = workload.faults.inject("signal \(signal) to placement and the lock service")
                try await cluster.placement.stop(signal: signal)
                try await cluster.lock.stop(signal: signal)
                // Storage keeps serving on the ring it has, past the failure timeout.
                try await workload.waitForProgress(writes: 30)
                try await Task.sleep(for: .seconds(cluster.downAfter + 0.5))
                try await workload.waitForProgress(writes: 20)
                try await cluster.startPlacement()
                try await cluster.startLock()
                workload.faults.healed(fault)
                try await cluster.waitUntilUp((0..<3).map(cluster.nodeAddress))
                try await workload.waitForProgress(writes: 20)
            }
        }
        // The lock service hands out the lock again (once the first lease, renewed
        // by the restart, runs out), with a newer token.
        let second = try await lockClient.call(LockMethods.acquire, WireLockAcquireRequest.with {
            $0.name = "nemesis"
            $0.owner = "after"
            $0.ttlMillis = 5000
            $0.waitMillis = 10_000
        }, options: CallOptions(timeout: .seconds(15)))
        #expect(second.grant.token > first.grant.token)
        try await cluster.stop()
    }

    @Test(.timeLimit(.minutes(2)), .enabled("network namespaces need the `ip` tool (iproute2) and root or CAP_SYS_ADMIN") {
        Netns.available
    })
    func partitionOneNodeWithNetworkNamespaces() async throws {
        let cluster = try NetnsCluster(nodes: 3)
        do {
            try await cluster.start()
            try await Self.run("partition", on: cluster) { workload in
                var generator = SeededGenerator(seed: Self.seed ^ 0x9A27)
                for _ in 0..<2 {
                    let victim = Int(generator.next() % 3)
                    let fault = workload.faults.inject("partition node \(victim)")
                    try cluster.cut(victim)
                    do {
                        try await workload.waitForProgress(writes: 20)
                        try await waitUntil("node \(victim) to be down", timeout: .seconds(15), interval: .milliseconds(100)) {
                            try await cluster.members().members[cluster.nodeAddress(victim)]?.state == .down
                        }
                        try await workload.waitForProgress(writes: 20)
                    } catch {
                        try? cluster.heal(victim)
                        throw error
                    }
                    try cluster.heal(victim)
                    workload.faults.healed(fault)
                    try await cluster.waitUntilUp([cluster.nodeAddress(victim)])
                    try await workload.waitForProgress(writes: 20)
                }
            }
        } catch {
            await cluster.destroy()
            throw error
        }
        await cluster.destroy()
    }
}
