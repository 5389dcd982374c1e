import ArgumentParser
import Basics
import BenchKit
import Foundation
import RingstoreClient
import Synchronization

/// `ringctl bench kv`: puts a set of keys, reads them back, and optionally
/// runs a mixed read/write phase, measuring throughput and latency of each.
struct KVBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv",
        abstract: "Measure put and get throughput and latency through the client library, and check every value read back.",
        discussion: """
            Writes --keys keys of --value-size bytes with --concurrency requests in flight, then \
            reads them all back. With --ops, a mixed phase follows: that many operations, a \
            --read-ratio share of them gets and the rest puts, on keys picked uniformly or, with \
            --zipf THETA, with a Zipfian skew (0.99 is YCSB's). Keys are PREFIX<i>, with a fresh \
            random prefix per run unless --prefix is given; each value encodes its key, so a wrong \
            or stale value is caught. Latencies (an HdrHistogram: p50, p99, p99.9, max) count \
            successful operations only; failures are counted apart. Prints the N, W and R the \
            requests ran with and the nodes' sync mode. Exits 1 when any request failed or any \
            value was missing or wrong.
            """
    )

    @Option(help: "Keys to write and read back.") var keys = 10_000
    @Option(help: "Bytes per value.") var valueSize = 100
    @Option(help: "Requests in flight.") var concurrency = 32
    @Option(help: "Key prefix (default: kvbench-<random>-).") var prefix: String?
    @Option(name: .customLong("w"), help: ArgumentHelp("Write quorum (default: the cluster's W).", valueName: "n")) var w: Int?
    @Option(name: .customLong("r"), help: ArgumentHelp("Read quorum (default: the cluster's R).", valueName: "n")) var r: Int?
    @Option(name: .customLong("n"), help: ArgumentHelp("Replicas (default: the cluster's N).", valueName: "n")) var n: Int?
    @Option(help: "Operations in the mixed phase after the load and read-back (0: no mixed phase).") var ops = 0
    @Option(help: "Share of gets in the mixed phase, 0...1.") var readRatio = 0.9
    @Option(help: ArgumentHelp("Zipfian skew of the mixed phase's keys, 0..<1 (0: uniform).", valueName: "theta")) var zipf = 0.0
    @Flag(help: "Skip the read-back phase (the load still runs: the mixed phase reads what it wrote).") var skipReadBack = false
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        guard (1...10_000_000).contains(keys) else { throw ValidationError("--keys must be 1...10000000") }
        guard (1...(1 << 20)).contains(valueSize) else { throw ValidationError("--value-size must be 1...1048576 bytes") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1...4096") }
        guard (0...100_000_000).contains(ops) else { throw ValidationError("--ops must be 0...100000000") }
        guard (0...1).contains(readRatio) else { throw ValidationError("--read-ratio must be 0...1") }
        guard zipf >= 0 && zipf < 1 else { throw ValidationError("--zipf must be at least 0 and below 1") }
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
            printError("ringctl: placement at \(ClusterEndpoints.describe(cluster.endpoints.placement)) did not answer; routing by the static node list")
        }
        let payload = BenchPayload(prefix: prefix ?? "kvbench-\(UInt32.random(in: 0...UInt32.max))-",
                                   valueSize: valueSize)
        let quorum = Quorum(n: n, w: w, r: r)
        let settings = await EffectiveSettings.ask(context: session.context, router: client.currentRouter,
                                                   nodes: cluster.endpoints.nodes, timeout: cluster.callTimeout,
                                                   n: n, w: w, r: r)

        @Sendable func put(_ index: Int) async -> BenchPhase.Outcome {
            do {
                _ = try await client.put(key: payload.key(index), value: payload.value(index), quorum: quorum)
                return .ok
            } catch {
                return .failed("\(error)")
            }
        }
        @Sendable func get(_ index: Int) async -> BenchPhase.Outcome {
            do {
                let reply = try await client.get(key: payload.key(index), quorum: quorum)
                guard reply.found else { return .missing }
                return reply.value == payload.value(index) ? .ok : .wrong
            } catch {
                return .failed("\(error)")
            }
        }

        var phases: [(name: String, phase: BenchPhase)] = []
        phases.append(("load", await BenchPhase.run(count: keys, concurrency: concurrency) { index, _ in ("put", await put(index)) }))
        if !skipReadBack {
            phases.append(("read-back", await BenchPhase.run(count: keys, concurrency: concurrency) { index, _ in ("get", await get(index)) }))
        }
        if ops > 0 {
            let picker = Zipfian(items: keys, theta: zipf)
            let readRatio = readRatio
            phases.append(("mixed", await BenchPhase.run(count: ops, concurrency: concurrency) { _, random in
                let index = picker.next(using: &random)
                return random.unit() < readRatio ? ("get", await get(index)) : ("put", await put(index))
            }))
        }

        let router = client.currentRouter
        if cluster.json {
            var object: [String: Any] = [
                "bench": "kv", "keys": keys, "value_size": valueSize, "concurrency": concurrency,
                "n": settings.n, "w": settings.w, "r": settings.r, "sync": settings.sync,
                "ring_epoch": Int(router?.epoch ?? 0),
            ]
            if ops > 0 {
                object["ops"] = ops
                object["read_ratio"] = readRatio
                object["zipf"] = zipf
            }
            for (name, phase) in phases {
                for (operation, tally) in phase.tallies.sorted(by: { $0.key < $1.key }) {
                    // The load and read-back keep the short names (put_..., get_...) of earlier releases.
                    let field = name == "mixed" ? "mixed_\(operation)_" : "\(operation)_"
                    object["\(field)ops_per_s"] = Int(phase.rate(of: tally))
                    object["\(field)ops"] = tally.latencies.count
                    object["\(field)errors"] = tally.failures
                    object["\(field)missing"] = tally.missing
                    object["\(field)wrong"] = tally.wrong
                    for (key, micros) in tally.latencies.jsonFields(prefix: field) { object[key] = micros }
                }
            }
            print(JSONLine.encode(object))
        } else {
            let ringText = router.map { "ring epoch \($0.epoch), \($0.ring.members.count) members" } ?? "no ring"
            print("kv \(keys) keys, \(valueSize)-byte values, \(concurrency) in flight, \(settings.text) (\(ringText))")
            for (name, phase) in phases {
                var title = name
                if name == "mixed" {
                    title += " (\(ops) ops, \(Int((readRatio * 100).rounded()))% gets, "
                        + (zipf > 0 ? "zipfian \(zipf))" : "uniform)")
                }
                print("  \(title):")
                for (operation, tally) in phase.tallies.sorted(by: { $0.key < $1.key }) {
                    print("    \(operation): \(phase.summary(of: tally))")
                }
            }
        }
        var bad = 0
        for (name, phase) in phases {
            for (operation, tally) in phase.tallies.sorted(by: { $0.key < $1.key }) {
                if let error = tally.firstError { printError("ringctl: first \(name) \(operation) error: \(error)") }
                bad += tally.failures + tally.missing + tally.wrong
            }
        }
        if bad > 0 { throw ExitCode(1) }
    }
}

/// The N, W and R a bench's requests ran with (the ones asked for, else the
/// cluster's defaults the nodes report), and the nodes' sync modes.
struct EffectiveSettings {
    var n: Int
    var w: Int
    var r: Int
    var sync: String
    var text: String { "N=\(n) W=\(w) R=\(r), sync \(sync)" }

    /// Asks every member's Health (or the static node list's) for its defaults;
    /// a figure no node gave stays 0, a sync mode "unknown".
    static func ask(context: ClientContext, router: RingRouter?, nodes: [String], timeout: Duration,
                    n asked: Int?, w askedW: Int?, r askedR: Int?) async -> EffectiveSettings {
        let targets = router.map { $0.ring.members.map(\.address) } ?? nodes
        var replicas = 0, defaultW = 0, defaultR = 0
        var syncModes: Set<String> = []
        for target in targets {
            guard let client = try? AdminClient(context: context, service: .node(target), caller: "ringctl-bench", callTimeout: timeout),
                  let health = try? await client.health()
            else { continue }
            client.close()
            if let sync = health.details["sync"] { syncModes.insert(sync) }
            replicas = max(replicas, Int(health.details["replicas"] ?? "") ?? 0)
            defaultW = max(defaultW, Int(health.details["default_w"] ?? "") ?? 0)
            defaultR = max(defaultR, Int(health.details["default_r"] ?? "") ?? 0)
        }
        let n = asked ?? replicas
        return EffectiveSettings(n: n, w: askedW ?? min(defaultW, n), r: askedR ?? min(defaultR, n),
                                 sync: syncModes.isEmpty ? "unknown" : syncModes.sorted().joined(separator: "/"))
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

/// One phase of a bench: `count` operations with `concurrency` in flight, each
/// timed, tallied by operation name ("put", "get").
struct BenchPhase: Sendable {
    enum Outcome: Sendable {
        case ok, missing, wrong
        case failed(String)
    }

    /// What one kind of operation did in a phase: latencies of the ones that
    /// succeeded, and the others counted by how they went wrong.
    struct Tally: Sendable {
        var latencies = Latencies()
        var failures = 0
        var missing = 0
        var wrong = 0
        var firstError: String?

        mutating func count(_ outcome: Outcome, took: Duration) {
            switch outcome {
            case .ok: latencies.record(took)
            case .missing: missing += 1
            case .wrong: wrong += 1
            case .failed(let error):
                failures += 1
                if firstError == nil { firstError = error }
            }
        }

        mutating func add(_ other: Tally) {
            latencies.add(other.latencies)
            failures += other.failures
            missing += other.missing
            wrong += other.wrong
            firstError = firstError ?? other.firstError
        }
    }

    var elapsed: Duration = .zero
    var tallies: [String: Tally] = [:]

    var seconds: Double { elapsed.inSeconds }

    /// Successful operations of `tally` per second of the phase.
    func rate(of tally: Tally) -> Double { seconds > 0 ? Double(tally.latencies.count) / seconds : 0 }

    func summary(of tally: Tally) -> String {
        var text = "\(tally.latencies.count) ok in \(String(format: "%.2f", seconds)) s: \(Int(rate(of: tally))) ops/s, "
            + "\(tally.latencies.summary), \(tally.failures) failed"
        if tally.missing + tally.wrong > 0 { text += ", \(tally.missing) missing, \(tally.wrong) wrong" }
        return text
    }

    /// Runs `operation` for indices 0..<count from `concurrency` workers; each
    /// worker has its own seeded generator. `operation` names what it did.
    static func run(count: Int, concurrency: Int, seed: UInt64 = 0x5EED,
                    _ operation: @escaping @Sendable (Int, inout SplitMix64) async -> (String, Outcome)) async -> BenchPhase {
        let next = IndexDispenser(count: count)
        let clock = ContinuousClock()
        let start = clock.now
        var phase = await withTaskGroup(of: [String: Tally].self) { group in
            for worker in 0..<min(concurrency, count) {
                group.addTask {
                    var random = SplitMix64(seed: seed &+ UInt64(worker) &* 0x9E37_79B9)
                    var tallies: [String: Tally] = [:]
                    while let index = next.take() {
                        let began = clock.now
                        let (name, outcome) = await operation(index, &random)
                        tallies[name, default: Tally()].count(outcome, took: clock.now - began)
                    }
                    return tallies
                }
            }
            var total: [String: Tally] = [:]
            for await part in group {
                for (name, tally) in part { total[name, default: Tally()].add(tally) }
            }
            return BenchPhase(tallies: total)
        }
        phase.elapsed = clock.now - start
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
