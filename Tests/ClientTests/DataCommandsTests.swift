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

    @Test(arguments: [
        [], ["k"], ["--stdin", "k", "v"], ["", "v"], ["k", "v", "--w", "0"], ["k", "v", "--w", "17"],
        ["k", "v", "--w", "3", "--n", "2"], ["--stdin", "--concurrency", "0"], ["k", "v", "--if-version", "12"],
        ["k", "v", "--if-version", "1@2", "--if-absent"], ["--stdin", "--if-version", "1@2"], ["k", "v", "--timeout", "0"],
    ])
    func invalidPutArguments(arguments: [String]) {
        #expect(throws: (any Error).self) { try PutCommand.parse(arguments) }
    }

    @Test(arguments: [["k"], ["k", "--r", "1", "--n", "5"], ["--stdin"], ["--stdin", "--concurrency", "4096"], ["k", "--json"]])
    func validGetArguments(arguments: [String]) throws {
        _ = try GetCommand.parse(arguments)
    }

    @Test(arguments: [[], [""], ["k", "--r", "0"], ["k", "--n", "99"], ["--stdin", "k"], ["--stdin", "--concurrency", "5000"], ["k", "--w", "2"]])
    func invalidGetArguments(arguments: [String]) {
        #expect(throws: (any Error).self) { try GetCommand.parse(arguments) }
    }

    @Test func delTakesOneKeyAndAWriteQuorum() throws {
        let command = try DelCommand.parse(["k", "--w", "1"])
        #expect(command.quorum.wire == WireQuorum.with { $0.w = 1 })
        #expect(throws: (any Error).self) { try DelCommand.parse([]) }
        #expect(throws: (any Error).self) { try DelCommand.parse([""]) }
        #expect(throws: (any Error).self) { try DelCommand.parse(["k", "--n", "0"]) }
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

    @Test(arguments: [["--keys", "0"], ["--value-size", "0"], ["--concurrency", "0"], ["--w", "0"], ["--prefix", ""]])
    func invalidBenchArguments(arguments: [String]) {
        #expect(throws: (any Error).self) { try KVBenchCommand.parse(arguments) }
    }
}

import Synchronization

final class IndexRecorder: Sendable {
    private let indices = Mutex<[Int]>([])
    func record(_ index: Int) { indices.withLock { $0.append(index) } }
    var sorted: [Int] { indices.withLock { $0.sorted() } }
}
