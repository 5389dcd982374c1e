import ArgumentParser
import Foundation
import RPC
import RingProtocol
import RingstoreClient
import ZeroMQ

/// `ringctl bench`: load generators that print figures.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the cluster.",
        subcommands: [EchoBenchCommand.self, KVBenchCommand.self, LockBenchCommand.self]
    )
}

/// `ringctl bench echo`: the RPC layer's round trip and throughput.
struct EchoBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo",
        abstract: "Measure RPC round trips (one in flight) and throughput (many in flight) with the Echo method."
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "Service to call: placement, lock, or a node's host:port.")
    var target = "placement"

    @Option(help: "Requests for the round-trip run (one in flight).")
    var requests = 20_000

    @Option(help: "Requests for the throughput run.")
    var throughputRequests = 200_000

    @Option(help: "Requests in flight for the throughput run.")
    var concurrency = 32

    @Option(help: "Payload bytes per request.")
    var payload = 64

    func validate() throws {
        guard requests > 0, throughputRequests > 0 else { throw ValidationError("request counts must be positive") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1...4096") }
        guard (0...(1 << 20)).contains(payload) else { throw ValidationError("--payload must be 0...1048576 bytes") }
    }

    func run() async throws {
        let endpoints = cluster.endpoints
        let method: RPCMethod<WireEchoRequest, WireEchoReply>
        let endpoint: String
        switch target {
        case "placement": (method, endpoint) = (PlacementMethods.echo, endpoints.placement)
        case "lock": (method, endpoint) = (LockMethods.echo, endpoints.locks)
        default: (method, endpoint) = (StorageMethods.echo, ClusterEndpoints.normalize(target))
        }
        let context = try ZMQContext()
        defer { context.shutdown() }
        let client = try RPCClient(context: context, endpoint: endpoint, caller: cluster.caller)
        defer { client.close() }
        let request = WireEchoRequest.with { $0.payload = Data(repeating: 0x5A, count: payload) }
        let options = CallOptions(timeout: cluster.callTimeout)
        let clock = ContinuousClock()

        // Warm up: connect and fault everything in.
        for _ in 0..<200 { _ = try await client.call(method, request, options: options) }

        var latencies: [Duration] = []
        latencies.reserveCapacity(requests)
        for _ in 0..<requests {
            let start = clock.now
            _ = try await client.call(method, request, options: options)
            latencies.append(clock.now - start)
        }
        latencies.sort()

        let perWorker = throughputRequests / concurrency
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    for _ in 0..<perWorker { _ = try await client.call(method, request, options: options) }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - start
        let total = perWorker * concurrency
        let rate = Double(total) / seconds(elapsed)

        let p50 = micros(latencies[latencies.count / 2])
        let p99 = micros(latencies[min(latencies.count - 1, latencies.count * 99 / 100)])
        if cluster.json {
            print("{\"bench\":\"echo\",\"target\":\"\(endpoint)\",\"payload\":\(payload),\"rtt_p50_us\":\(p50),\"rtt_p99_us\":\(p99),\"in_flight\":\(concurrency),\"throughput_rps\":\(Int(rate))}")
        } else {
            print("echo \(endpoint) payload=\(payload)B")
            print("  round trip (1 in flight, \(requests) calls): p50 \(p50) us, p99 \(p99) us")
            print("  throughput (\(concurrency) in flight, \(total) calls): \(Int(rate)) requests/s")
        }
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func micros(_ duration: Duration) -> Int {
        Int(seconds(duration) * 1_000_000)
    }
}
