import ArgumentParser
import Foundation
import RPC
import RingProtocol
import RingstoreClient
import Synchronization

/// `ringctl bench kv`: puts a set of keys, then reads them back, measuring
/// throughput and latency of each phase and checking every value.
struct KVBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Measure put and get throughput and latency through the client library, and check every value read back.",
        discussion: """
            Writes --keys keys of --value-size bytes with --concurrency requests in flight, then \
            reads them all back. Keys are PREFIX<i>, with a fresh random prefix per run unless \
            --prefix is given; each value encodes its key, so a wrong or stale value is caught. \
            Exits 1 when any request failed or any value was missing or wrong.
            """
    )

    @Option(help: "Keys to write and read back.") var keys = 10_000
    @Option(help: "Bytes per value.") var valueSize = 100
    @Option(help: "Requests in flight.") var concurrency = 32
    @Option(help: "Key prefix (default: kvbench-<random>-).") var prefix: String?
    @Option(name: .customLong("w"), help: ArgumentHelp("Write quorum (default: the cluster's W).", valueName: "n")) var w: Int?
    @Option(name: .customLong("r"), help: ArgumentHelp("Read quorum (default: the cluster's R).", valueName: "n")) var r: Int?
    @Option(name: .customLong("n"), help: ArgumentHelp("Replicas (default: the cluster's N).", valueName: "n")) var n: Int?
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        guard (1...10_000_000).contains(keys) else { throw ValidationError("--keys must be 1...10000000") }
        guard (1...(1 << 20)).contains(valueSize) else { throw ValidationError("--value-size must be 1...1048576 bytes") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1...4096") }
        try QuorumValue.validate(w, name: "--w")
        try QuorumValue.validate(r, name: "--r")
        try QuorumValue.validate(n, name: "--n")
        if prefix?.isEmpty == true { throw ValidationError("--prefix must not be empty") }
    }

    func run() async throws {
        let session = try DataSession(cluster)
        defer { session.close() }
        let client = session.client
        if !(await client.refreshRing()) {
            printError("ringctl: placement at \(cluster.endpoints.placement) did not answer; routing by the static node list")
        }
        let payload = BenchPayload(prefix: prefix ?? "kvbench-\(UInt32.random(in: 0...UInt32.max))-",
                                   valueSize: valueSize)
        let quorum = WireQuorum.with { $0.n = UInt32(n ?? 0); $0.w = UInt32(w ?? 0); $0.r = UInt32(r ?? 0) }

        let puts = await BenchPhase.run(count: keys, concurrency: concurrency) { index in
            do {
                _ = try await client.put(key: payload.key(index), value: payload.value(index), quorum: quorum)
                return .ok
            } catch {
                return .failed("\(error)")
            }
        }
        let gets = await BenchPhase.run(count: keys, concurrency: concurrency) { index in
            do {
                let reply = try await client.get(key: payload.key(index), quorum: quorum)
                guard reply.found else { return .missing }
                return Array(reply.value) == payload.value(index) ? .ok : .wrong
            } catch {
                return .failed("\(error)")
            }
        }

        let router = client.currentRouter
        if cluster.json {
            var object: [String: Any] = [
                "bench": "kv", "keys": keys, "value_size": valueSize, "concurrency": concurrency,
                "n": n ?? 0, "w": w ?? 0, "r": r ?? 0, "ring_epoch": Int(router?.epoch ?? 0),
                "missing": gets.missing, "wrong": gets.wrong,
            ]
            for (name, phase) in [("put", puts), ("get", gets)] {
                object["\(name)_ops_per_s"] = Int(phase.rate)
                object["\(name)_p50_us"] = phase.percentileMicros(50)
                object["\(name)_p99_us"] = phase.percentileMicros(99)
                object["\(name)_errors"] = phase.failures
            }
            print(JSONLine.encode(object))
        } else {
            let quorumText = "N=\(n.map(String.init) ?? "default") W=\(w.map(String.init) ?? "default") R=\(r.map(String.init) ?? "default")"
            let ringText = router.map { "ring epoch \($0.epoch), \($0.ring.members.count) members" } ?? "no ring"
            print("kv \(keys) keys, \(valueSize)-byte values, \(concurrency) in flight, \(quorumText) (\(ringText))")
            print("  put: \(puts.summary)")
            print("  get: \(gets.summary), \(gets.missing) missing, \(gets.wrong) wrong")
        }
        for (name, phase) in [("put", puts), ("get", gets)] {
            if let error = phase.firstError { printError("ringctl: first \(name) error: \(error)") }
        }
        if puts.failures + gets.failures + gets.missing + gets.wrong > 0 { throw ExitCode(1) }
    }
}

/// The keys and values of one bench run: value `i` starts with key `i` and is
/// padded with a byte that depends on `i`, so any mix-up shows.
struct BenchPayload: Sendable {
    let prefix: [UInt8]
    let valueSize: Int

    init(prefix: String, valueSize: Int) {
        self.prefix = Array(prefix.utf8)
        self.valueSize = valueSize
    }

    func key(_ index: Int) -> [UInt8] { prefix + Array(String(index).utf8) }

    func value(_ index: Int) -> [UInt8] {
        var value = [UInt8](repeating: UInt8(ascii: "a") + UInt8(index % 26), count: valueSize)
        let stamp = key(index) + [UInt8(ascii: "=")]
        for (offset, byte) in stamp.prefix(valueSize).enumerated() { value[offset] = byte }
        return value
    }
}

/// One phase of a bench: `count` operations with `concurrency` in flight, timed one by one.
struct BenchPhase: Sendable {
    enum Outcome: Sendable {
        case ok, missing, wrong
        case failed(String)
    }

    var elapsed: Duration = .zero
    /// Latencies in nanoseconds, sorted.
    var latencies: [Int64] = []
    var failures = 0
    var missing = 0
    var wrong = 0
    var firstError: String?

    var rate: Double {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return seconds > 0 ? Double(latencies.count) / seconds : 0
    }

    func percentileMicros(_ percentile: Int) -> Int {
        guard !latencies.isEmpty else { return 0 }
        return Int(latencies[min(latencies.count - 1, latencies.count * percentile / 100)] / 1000)
    }

    var summary: String {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return "\(latencies.count) in \(String(format: "%.2f", seconds)) s: \(Int(rate)) ops/s, "
            + "p50 \(percentileMicros(50)) us, p99 \(percentileMicros(99)) us, \(failures) errors"
    }

    /// Runs `operation` for indices 0..<count from `concurrency` workers.
    static func run(count: Int, concurrency: Int, _ operation: @escaping @Sendable (Int) async -> Outcome) async -> BenchPhase {
        let next = IndexDispenser(count: count)
        let clock = ContinuousClock()
        let start = clock.now
        var phase = await withTaskGroup(of: BenchPhase.self) { group in
            for _ in 0..<min(concurrency, count) {
                group.addTask {
                    var part = BenchPhase()
                    while let index = next.take() {
                        let began = clock.now
                        let outcome = await operation(index)
                        let took = clock.now - began
                        part.latencies.append(took.components.seconds * 1_000_000_000 + took.components.attoseconds / 1_000_000_000)
                        switch outcome {
                        case .ok: break
                        case .missing: part.missing += 1
                        case .wrong: part.wrong += 1
                        case .failed(let error):
                            part.failures += 1
                            if part.firstError == nil { part.firstError = error }
                        }
                    }
                    return part
                }
            }
            var total = BenchPhase()
            for await part in group {
                total.latencies += part.latencies
                total.failures += part.failures
                total.missing += part.missing
                total.wrong += part.wrong
                total.firstError = total.firstError ?? part.firstError
            }
            return total
        }
        phase.elapsed = clock.now - start
        phase.latencies.sort()
        return phase
    }
}

/// Hands out the indices 0..<count, each once, to concurrent workers.
final class IndexDispenser: Sendable {
    private let next = Atomic<Int>(0)
    let count: Int

    init(count: Int) { self.count = count }

    func take() -> Int? {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return index < count ? index : nil
    }
}
