#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StorageEngine

/// The child process of the crash-durability test: writes acknowledged batches until killed.
///
/// Record `i` of batch `b` has key `crash-<b>-<i>`, value `value-<b>-<i>` followed by 64
/// bytes of `(b * 31 + i) mod 256`, and version `(b * batchSize + i + 1)@1`; the test
/// rebuilds the same records to check them.
struct CrashWriter {
    let path: String
    let sync: SyncMode
    let batchSize: Int

    init(arguments: [String]) throws {
        guard arguments.count == 3, let sync = SyncMode(rawValue: arguments[1]),
              let batchSize = Int(arguments[2]), batchSize > 0
        else {
            throw BenchmarkUsageError(message: "usage: crash-writer PATH full|normal BATCH_SIZE")
        }
        self.path = arguments[0]
        self.sync = sync
        self.batchSize = batchSize
    }

    func run() throws {
        let engine = try StorageEngine(path: path, sync: sync)
        // Stops on its own eventually, should the test that spawned it die first.
        for batch in 0..<1_000_000 {
            let records = try (0..<batchSize).map { index in
                let value = Array("value-\(batch)-\(index)".utf8)
                    + Array(repeating: UInt8(truncatingIfNeeded: batch &* 31 &+ index), count: 64)
                return try VersionedRecord(
                    key: Array("crash-\(batch)-\(index)".utf8),
                    value: value,
                    version: Version(timestamp: UInt64(batch * batchSize + index + 1), writer: 1)
                )
            }
            _ = try engine.apply(records)
            print("committed \(batch)")
            fflush(nil)  // all streams: stdout is a pipe, so fully buffered
        }
        try engine.close()
    }
}

/// A mistake on the command line.
struct BenchmarkUsageError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
