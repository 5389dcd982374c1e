import ArgumentParser
import Basics
import BenchKit
import Foundation
import RingstoreClient

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

    @Option(help: "Service to call: placement, lock (the first of their endpoints), or a node's host:port.")
    var target = "placement"

    @Option(help: "Requests for the round-trip run (one in flight; 0: skip it).")
    var requests = 20_000

    @Option(help: "Requests for the throughput run.")
    var throughputRequests = 200_000

    @Option(help: "Requests in flight for the throughput run.")
    var concurrency = 32

    @Option(help: "Payload bytes per request.")
    var payload = 64

    func validate() throws {
        guard requests >= 0 else { throw ValidationError("--requests must not be negative") }
        guard throughputRequests > 0 else { throw ValidationError("--throughput-requests must be positive") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1...4096") }
        guard (0...(1 << 20)).contains(payload) else { throw ValidationError("--payload must be 0...1048576 bytes") }
    }

    func run() async throws {
        let endpoints = cluster.endpoints
        let service: Service
        switch target {
        // Any replica answers Echo: the first endpoint given.
        case "placement": service = .placement(endpoints.placement.first ?? ClusterEndpoints.defaultPlacement)
        case "lock": service = .lock(endpoints.locks.first ?? ClusterEndpoints.defaultLocks)
        default: service = .node(target)
        }
        let endpoint = service.endpoint
        let context = try cluster.context()
        defer { context.shutdown() }
        let client = try AdminClient(context: context, service: service, caller: cluster.caller, callTimeout: cluster.callTimeout)
        defer { client.close() }
        let request = [UInt8](repeating: 0x5A, count: payload)
        let clock = ContinuousClock()

        // Warm up: connect and fault everything in.
        for _ in 0..<200 { try await client.echo(request) }

        var roundTrips = Latencies()
        for _ in 0..<requests {
            let start = clock.now
            try await client.echo(request)
            roundTrips.record(clock.now - start)
        }

        // Throughput: `concurrency` callers, each timing its own calls.
        let perWorker = max(1, throughputRequests / concurrency)
        let start = clock.now
        let loaded = try await withThrowingTaskGroup(of: Latencies.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var part = Latencies()
                    for _ in 0..<perWorker {
                        let began = clock.now
                        try await client.echo(request)
                        part.record(clock.now - began)
                    }
                    return part
                }
            }
            var all = Latencies()
            for try await part in group { all.add(part) }
            return all
        }
        let elapsed = clock.now - start
        let total = perWorker * concurrency
        let rate = Double(total) / elapsed.inSeconds

        if cluster.json {
            var object: [String: Any] = [
                "bench": "echo", "target": endpoint, "payload": payload, "in_flight": concurrency,
                "throughput_rps": Int(rate), "calls": total,
            ]
            if requests > 0 {
                for (field, micros) in roundTrips.jsonFields(prefix: "rtt_") { object[field] = micros }
            }
            for (field, micros) in loaded.jsonFields(prefix: "loaded_") { object[field] = micros }
            print(JSONLine.encode(object))
        } else {
            print("echo \(endpoint) payload=\(payload)B")
            if requests > 0 { print("  round trip (1 in flight, \(requests) calls): \(roundTrips.summary)") }
            print("  throughput (\(concurrency) in flight, \(total) calls): \(Int(rate)) requests/s, \(loaded.summary)")
        }
    }

}
