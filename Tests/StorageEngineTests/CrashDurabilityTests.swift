import Foundation
import StorageEngine
import Testing

/// Kills a writer process with SIGKILL right after it acknowledged batches, then checks
/// that every acknowledged record is on disk and no batch is half-stored.
///
/// The writer is the benchmark executable's `crash-writer` mode: it applies batch after
/// batch of deterministic records and prints `committed <n>` after `apply` returns.
@Suite("Crash durability")
struct CrashDurabilityTests {
    static let batchSize = 100
    static let acknowledgedBatches = 25

    /// Record `index` of batch `batch`, as the crash writer makes it.
    static func record(batch: Int, index: Int) throws -> VersionedRecord {
        let value = Array("value-\(batch)-\(index)".utf8) + Array(repeating: UInt8(truncatingIfNeeded: batch &* 31 &+ index), count: 64)
        return try VersionedRecord(
            key: Array("crash-\(batch)-\(index)".utf8),
            value: value,
            version: Version(timestamp: UInt64(batch * batchSize + index + 1), writer: 1)
        )
    }

    /// The benchmark executable next to the test runner in the build directory.
    static func writerExecutable() -> URL? {
        let runners = [
            URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath(),
            URL(fileURLWithPath: CommandLine.arguments[0]),
        ]
        for runner in runners {
            var directory = runner.deletingLastPathComponent()
            // On Darwin the runner sits inside an .xctest bundle.
            while directory.pathExtension == "xctest" || directory.lastPathComponent == "MacOS" || directory.lastPathComponent == "Contents" {
                directory.deleteLastPathComponent()
            }
            let candidate = directory.appendingPathComponent("ringstore-bench-storage")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    @Test("SIGKILL after acknowledged batches loses none of them", arguments: SyncMode.allCases)
    func killedWriter(sync: SyncMode) throws {
        let executable = try #require(Self.writerExecutable(), "ringstore-bench-storage must be built next to the tests")
        let directory = try TemporaryDirectory()
        let path = directory.path()

        let process = Process()
        process.executableURL = executable
        process.arguments = ["crash-writer", path, sync.rawValue, String(Self.batchSize)]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()

        // Read acknowledgements until enough batches are committed, then kill at once.
        var acknowledged = -1
        var pending = Data()
        reading: while acknowledged < Self.acknowledgedBatches - 1 {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break reading }
            pending.append(chunk)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending.removeSubrange(pending.startIndex...newline)
                if line.hasPrefix("committed "), let batch = Int(line.dropFirst("committed ".count)) {
                    #expect(batch == acknowledged + 1)
                    acknowledged = batch
                }
            }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        try #require(acknowledged == Self.acknowledgedBatches - 1, "the writer stopped early: \(stderr)")
        #expect(process.terminationReason == .uncaughtSignal)

        let engine = try StorageEngine(path: path, sync: sync)
        defer { try? engine.close() }
        for batch in 0...acknowledged {
            for index in 0..<Self.batchSize {
                let expected = try Self.record(batch: batch, index: index)
                #expect(try engine.get(key: expected.key) == expected, "batch \(batch) record \(index)")
            }
        }
        // Batches after the last acknowledgement are stored whole or not at all.
        var batch = acknowledged + 1
        while true {
            let present = try (0..<Self.batchSize).count { try engine.get(key: Self.record(batch: batch, index: $0).key) != nil }
            #expect(present == 0 || present == Self.batchSize, "batch \(batch) is half-stored")
            if present == 0 { break }
            batch += 1
        }
        #expect(try engine.stats().liveKeys == batch * Self.batchSize)
    }
}
