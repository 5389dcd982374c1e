import ArgumentParser
import BenchKit
import Foundation
import RingstoreClient

/// `ringctl bench lock`: lock latency over real sockets.
struct LockBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Measure uncontended acquire+release latency and the handoff from a release to the next waiter's grant.",
        discussion: """
            Uncontended: one client acquires and releases a lock nobody else uses, --count times; the \
            figure is the time for both calls. Handoff: client A holds the lock while client B waits \
            for it (parked on the lock service); the figure is the time from A sending its release to \
            B receiving its grant. Both include the lock service's fsync of the new token or holder. \
            Uses a fresh lock name per run.
            """
    )

    @Option(help: "Measured rounds of each kind.") var count = 1000
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be 1...1000000") }
    }

    func run() async throws {
        let context = try cluster.context()
        defer { context.shutdown() }
        let run = "\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
        let name = "bench/\(run)"
        let first = try LockClient(context: context, endpoints: cluster.endpoints, owner: "bench-a-\(run)",
                                   caller: cluster.caller, callTimeout: cluster.callTimeout)
        let second = try LockClient(context: context, endpoints: cluster.endpoints, owner: "bench-b-\(run)",
                                    caller: cluster.caller, callTimeout: cluster.callTimeout)
        defer {
            first.close()
            second.close()
        }
        let ttl = Duration.seconds(30)
        let clock = ContinuousClock()
        do {
            // Warm up: connect both clients and fault everything in.
            for _ in 0..<50 {
                for client in [first, second] {
                    let grant = try await client.acquire(name, ttl: ttl)
                    try await client.release(name, token: grant.token)
                }
            }

            var uncontended = Latencies()
            for _ in 0..<count {
                let start = clock.now
                let grant = try await first.acquire(name, ttl: ttl)
                try await first.release(name, token: grant.token)
                uncontended.record(clock.now - start)
            }

            var handoffs = Latencies()
            for _ in 0..<count {
                let held = try await first.acquire(name, ttl: ttl)
                let waiter = Task { () -> Result<(LockGrant, ContinuousClock.Instant), RingstoreError> in
                    do throws(RingstoreError) {
                        let grant = try await second.acquire(name, ttl: ttl, wait: .seconds(30))
                        return .success((grant, ContinuousClock.now))
                    } catch {
                        return .failure(error)
                    }
                }
                // Release only once B is parked on the service.
                while try await first.status(name).waiters.isEmpty {}
                let start = clock.now
                try await first.release(name, token: held.token)
                let (grant, granted) = try await waiter.value.get()
                handoffs.record(granted - start)
                guard grant.token == held.token + 1 else {
                    throw RingstoreError.internalError("handoff granted token \(grant.token) after \(held.token)")
                }
                try await second.release(name, token: grant.token)
            }
            report(uncontended: uncontended, handoffs: handoffs)
        } catch {
            throw LockOutput.fail("bench lock", error)
        }
    }

    private func report(uncontended: Latencies, handoffs: Latencies) {
        let endpoint = ClusterEndpoints.describe(cluster.endpoints.locks)
        if cluster.json {
            var object: [String: Any] = ["bench": "lock", "target": endpoint, "count": count]
            for (field, micros) in uncontended.jsonFields(prefix: "acquire_release_") { object[field] = micros }
            for (field, micros) in handoffs.jsonFields(prefix: "handoff_") { object[field] = micros }
            print(JSONLine.encode(object))
        } else {
            print("lock \(endpoint), \(count) rounds each")
            print("  uncontended acquire+release: \(uncontended.summary)")
            print("  handoff, release to the next waiter's grant: \(handoffs.summary)")
        }
    }
}
