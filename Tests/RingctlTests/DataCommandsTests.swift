import ArgumentParser
import BenchKit
@testable import RingctlCommands
import RingstoreClient
import Testing

@Suite struct DataCommandArgumentTests {
    @Test(arguments: [
        ["k", "v"], ["k", "v", "--w", "1", "--n", "3"], ["--stdin"], ["--stdin", "--concurrency", "1"], ["--stdin", "--if-absent"],
        ["k", "v", "--if-absent"], ["k", "v", "--if-version", "123@4"],
    ])
    func validPutArguments(arguments: [String]) throws {
        _ = try PutCommand.parse(arguments)
    }

    /// Parses `arguments` as the ringctl executable does and expects them refused
    /// with exactly `message` and the usage exit status (64, EX_USAGE).
    static func expectRefused(_ arguments: [String], _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let command = try Ringctl.parseAsRoot(arguments)
            Issue.record("\(arguments) parsed as \(type(of: command))", sourceLocation: sourceLocation)
        } catch {
            #expect(Ringctl.message(for: error) == message, "\(arguments)", sourceLocation: sourceLocation)
            #expect(Ringctl.exitCode(for: error) == .validationFailure, "\(arguments)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: [
        ([], "give KEY VALUE, or --stdin to read them"),
        (["k"], "give KEY VALUE, or --stdin to read them"),
        (["--stdin", "k", "v"], "give KEY VALUE or --stdin, not both"),
        (["", "v"], "KEY must not be empty"),
        (["k", "v", "--w", "0"], "--w must be 1...16, not 0"),
        (["k", "v", "--w", "17"], "--w must be 1...16, not 17"),
        (["k", "v", "--w", "3", "--n", "2"], "--w 3 exceeds --n 2"),
        (["--stdin", "--concurrency", "0"], "--concurrency must be 1...4096"),
        (["k", "v", "--if-version", "12"], "--if-version must be TIMESTAMP@WRITER, not '12'"),
        (["k", "v", "--if-version", "1@2", "--if-absent"], "--if-version and --if-absent exclude each other"),
        (["--stdin", "--if-version", "1@2"], "--if-version applies to one key, not to --stdin"),
        (["k", "v", "--timeout", "0"], "--timeout must be more than 0 and at most 3600 seconds, not 0.0"),
        (["k", "v", "--fence", "lock"], "--fence must be NAME:TOKEN with a lock name and a token above 0, not 'lock'"),
        (["k", "v", "--w", "two"], "The value 'two' is invalid for '--w <n>'"),
    ] as [([String], String)])
    func invalidPutArguments(arguments: [String], message: String) {
        Self.expectRefused(["put"] + arguments, message)
    }

    @Test(arguments: [["k"], ["k", "--r", "1", "--n", "5"], ["--stdin"], ["--stdin", "--concurrency", "4096"], ["k", "--json"]])
    func validGetArguments(arguments: [String]) throws {
        _ = try GetCommand.parse(arguments)
    }

    @Test(arguments: [
        ([], "give KEY, or --stdin to read them"),
        ([""], "KEY must not be empty"),
        (["k", "--r", "0"], "--r must be 1...16, not 0"),
        (["k", "--n", "99"], "--n must be 1...16, not 99"),
        (["--stdin", "k"], "give KEY or --stdin, not both"),
        (["--stdin", "--concurrency", "5000"], "--concurrency must be 1...4096"),
        (["k", "--w", "2"], "Unknown option '--w'. Did you mean '--r'?"),
    ] as [([String], String)])
    func invalidGetArguments(arguments: [String], message: String) {
        Self.expectRefused(["get"] + arguments, message)
    }

    @Test func delTakesOneKeyAndAWriteQuorum() throws {
        let command = try DelCommand.parse(["k", "--w", "1"])
        #expect(command.quorum.quorum == Quorum(w: 1))
        Self.expectRefused(["del"], "Missing expected argument '<key>'")
        Self.expectRefused(["del", ""], "KEY must not be empty")
        Self.expectRefused(["del", "k", "--n", "0"], "--n must be 1...16, not 0")
        Self.expectRefused(["del", "k", "--w", "4", "--n", "3"], "--w 4 exceeds --n 3")
    }

    @Test func quorumOptionsBecomeTheQuorum() throws {
        #expect(try PutCommand.parse(["k", "v", "--w", "2", "--n", "5"]).quorum.quorum == Quorum(n: 5, w: 2))
        #expect(try PutCommand.parse(["k", "v"]).quorum.quorum == Quorum())
    }

    @Test func versionsRoundTripAsText() {
        let version = Version(timestamp: 117_691_876_970_463_232, writer: 11_163_675_947_428_640_179)
        #expect(version.description == "117691876970463232@11163675947428640179")
        #expect(Version(version.description) == version)
        for text in ["", "1", "1@", "@1", "1@2@3", "a@1", "-1@2", "1:2", "1@99999999999999999999"] {
            #expect(Version(text) == nil, "\(text)")
        }
    }
}

@Suite struct KVBenchTests {
    @Test func valuesEncodeTheirKeys() {
        let payload = BenchPayload(prefix: "p-", valueSize: 20)
        #expect(payload.key(42) == Array("p-42".utf8))
        let value = payload.value(42)
        #expect(value.count == 20)
        #expect(value.starts(with: Array("p-42=".utf8)))
        #expect(payload.value(42) == value)
        #expect(payload.value(43) != value)
        #expect(Set((0..<1000).map(payload.value)).count == 1000)
    }

    @Test(arguments: [1, 3, 5])
    func shortValuesKeepTheirSize(size: Int) {
        let payload = BenchPayload(prefix: "kvbench-", valueSize: size)
        #expect(payload.value(7).count == size)
    }

    @Test func aPhaseRunsEveryIndexOnceAndCountsOutcomes() async {
        let seen = IndexRecorder()
        let phase = await BenchPhase.run(count: 1000, concurrency: 7) { index, _ in
            seen.record(index)
            let name = index % 2 == 0 ? "put" : "get"
            switch index % 10 {
            case 0: return (name, .missing)
            case 1: return (name, .wrong)
            case 2: return (name, .failed("boom \(index)"))
            default: return (name, .ok)
            }
        }
        #expect(seen.sorted == Array(0..<1000))
        let put = phase.tallies["put"]!, get = phase.tallies["get"]!
        // Only successes have latencies; the rest are counted apart.
        #expect(put.latencies.count == 300 && get.latencies.count == 400)
        #expect((put.missing, put.wrong, put.failures) == (100, 0, 100))
        #expect((get.missing, get.wrong, get.failures) == (0, 100, 0))
        #expect(put.firstError?.hasPrefix("boom") == true)
        #expect(put.latencies.micros(atPercentile: 50) <= put.latencies.micros(atPercentile: 99))
        #expect(put.latencies.micros(atPercentile: 99.9) <= put.latencies.maxMicros)
    }

    @Test func zipfianKeysAreSkewedTowardTheFirstAndStayInRange() {
        let zipf = Zipfian(items: 1000, theta: 0.99)
        var random = SplitMix64(seed: 7)
        var counts = [Int](repeating: 0, count: 1000)
        for _ in 0..<100_000 { counts[zipf.next(using: &random)] += 1 }
        // Under theta 0.99 index 0 takes about 1/zeta(1000) = 13% of the draws,
        // index 1 about half that, and the top tenth most of them.
        #expect((11_000...15_000).contains(counts[0]), "\(counts[0])")
        #expect((5_000...8_000).contains(counts[1]), "\(counts[1])")
        #expect(counts.prefix(100).reduce(0, +) > 60_000)
        #expect(counts[999] < 200)
        let uniform = Zipfian(items: 1000, theta: 0)
        var flat = [Int](repeating: 0, count: 10)
        for _ in 0..<100_000 { flat[uniform.next(using: &random) / 100] += 1 }
        #expect(flat.allSatisfy { (9_000...11_000).contains($0) }, "\(flat)")
    }

    @Test func latenciesKeepPercentilesWithinTheHistogramsPrecision() {
        var latencies = Latencies()
        for micros in 1...10_000 { latencies.record(.microseconds(micros)) }
        #expect(latencies.count == 10_000)
        #expect(abs(latencies.micros(atPercentile: 50) - 5_000) <= 5)
        #expect(abs(latencies.micros(atPercentile: 99) - 9_900) <= 10)
        #expect(abs(latencies.micros(atPercentile: 99.9) - 9_990) <= 10)
        #expect(abs(latencies.maxMicros - 10_000) <= 10)
        var other = Latencies()
        other.record(.seconds(2))
        latencies.add(other)
        #expect(latencies.count == 10_001)
        #expect(abs(latencies.maxMicros - 2_000_000) <= 2_000)
        #expect(latencies.jsonFields(prefix: "get_").keys.sorted() == ["get_max_us", "get_p50_us", "get_p999_us", "get_p99_us"])
        #expect(Latencies().micros(atPercentile: 99) == 0)
    }

    @Test(arguments: [
        (["--keys", "0"], "--keys must be 1...10000000"),
        (["--value-size", "0"], "--value-size must be 1...1048576 bytes"),
        (["--concurrency", "0"], "--concurrency must be 1...4096"),
        (["--w", "0"], "--w must be 1...16, not 0"),
        (["--prefix", ""], "--prefix must not be empty"),
        (["--ops=-1"], "--ops must be 0...100000000"),
        (["--read-ratio", "1.5"], "--read-ratio must be 0...1"),
        (["--zipf", "1"], "--zipf must be at least 0 and below 1"),
    ] as [([String], String)])
    func invalidBenchArguments(arguments: [String], message: String) {
        DataCommandArgumentTests.expectRefused(["bench", "kv"] + arguments, message)
    }
}

import Synchronization

final class IndexRecorder: Sendable {
    private let indices = Mutex<[Int]>([])
    func record(_ index: Int) { indices.withLock { $0.append(index) } }
    var sorted: [Int] { indices.withLock { $0.sorted() } }
}
