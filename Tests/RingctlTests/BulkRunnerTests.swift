import Foundation
import RingstoreClient
@testable import RingctlCommands
import Synchronization
import Testing
import TestKit

/// The bulk modes' runner: many lines in flight, but the lines of one key in input order.
@Suite struct BulkRunnerTests {
    @Test func linesOfOneKeyRunOneAfterTheOtherInInputOrderWhileOthersRunConcurrently() async throws {
        var input: [UInt8] = []
        for index in 0..<150 {
            input += Array("hot\t\(index)\nother-\(index)\tx\nwarm\t\(index)\n".utf8)
        }
        let chunks = Mutex<[[UInt8]]>(stride(from: 0, to: input.count, by: 4096).map { Array(input[$0..<min($0 + 4096, input.count)]) })
        let finished = Mutex<[String: [Int]]>([:])
        let running = Mutex<(now: Int, most: Int)>((0, 0))
        let delays = Mutex(SeededGenerator(seed: 7))
        let devNull = open("/dev/null", O_WRONLY)
        defer { close(devNull) }
        try await BulkRunner.run(concurrency: 16, orderedBy: { try? BulkLine.parsePut($0).get().key },
                                 nextChunk: { chunks.withLock { $0.isEmpty ? nil : $0.removeFirst() } },
                                 output: OutputSink(fileDescriptor: devNull)) { line in
            let (key, value) = try! BulkLine.parsePut(line).get()
            running.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
            // Answers arrive in a random order, as from a busy cluster.
            let delay = delays.withLock { Int($0.next() % 3000) }
            try? await Task.sleep(for: .microseconds(delay))
            running.withLock { $0.now -= 1 }
            finished.withLock { $0[String(decoding: key, as: UTF8.self), default: []].append(Int(String(decoding: value, as: UTF8.self)) ?? -1) }
            return (key, .ok)
        }
        let order = finished.withLock { $0 }
        #expect(order["hot"] == Array(0..<150), "hot finished out of input order")
        #expect(order["warm"] == Array(0..<150), "warm finished out of input order")
        #expect(order.count == 152)
        #expect(running.withLock { $0.most } > 2, "other keys must still run concurrently")
    }
}
