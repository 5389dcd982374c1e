import ArgumentParser
import RingProtocol
@testable import RingctlCommands
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
        #expect(command.quorum.wire == WireQuorum.with { $0.w = 1 })
        Self.expectRefused(["del"], "Missing expected argument '<key>'")
        Self.expectRefused(["del", ""], "KEY must not be empty")
        Self.expectRefused(["del", "k", "--n", "0"], "--n must be 1...16, not 0")
        Self.expectRefused(["del", "k", "--w", "4", "--n", "3"], "--w 4 exceeds --n 3")
    }

    @Test func quorumOptionsBecomeTheWireQuorum() throws {
        #expect(try PutCommand.parse(["k", "v", "--w", "2", "--n", "5"]).quorum.wire == WireQuorum.with { $0.w = 2; $0.n = 5 })
        #expect(try PutCommand.parse(["k", "v"]).quorum.wire == WireQuorum())
    }

    @Test func versionsRoundTripAsText() {
        let version = WireVersion.with { $0.timestamp = 117_691_876_970_463_232; $0.writer = 11_163_675_947_428_640_179 }
        #expect(VersionText.format(version) == "117691876970463232@11163675947428640179")
        #expect(VersionText.parse(VersionText.format(version)) == version)
        for text in ["", "1", "1@", "@1", "1@2@3", "a@1", "-1@2", "1:2", "1@99999999999999999999"] {
            #expect(VersionText.parse(text) == nil, "\(text)")
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
        let phase = await BenchPhase.run(count: 1000, concurrency: 7) { index in
            seen.record(index)
            switch index % 10 {
            case 0: return .missing
            case 1: return .wrong
            case 2: return .failed("boom \(index)")
            default: return .ok
            }
        }
        #expect(seen.sorted == Array(0..<1000))
        #expect(phase.latencies.count == 1000)
        #expect(phase.latencies == phase.latencies.sorted())
        #expect((phase.missing, phase.wrong, phase.failures) == (100, 100, 100))
        #expect(phase.firstError?.hasPrefix("boom") == true)
        #expect(phase.percentileMicros(50) <= phase.percentileMicros(99))
    }

    @Test(arguments: [
        (["--keys", "0"], "--keys must be 1...10000000"),
        (["--value-size", "0"], "--value-size must be 1...1048576 bytes"),
        (["--concurrency", "0"], "--concurrency must be 1...4096"),
        (["--w", "0"], "--w must be 1...16, not 0"),
        (["--prefix", ""], "--prefix must not be empty"),
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
