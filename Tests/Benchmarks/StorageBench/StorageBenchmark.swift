#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import BenchKit
import Ring
import StorageEngine

/// Throughput of the storage engine on fresh databases: writes per batch size and sync mode,
/// point reads and arc scans, printed as rows per second.
struct StorageBenchmark {
    private var directory = "/tmp"
    private var rows = 200_000
    private var batches: [Int]?
    private var compareCheckpoints = false
    private let valueSize = 100

    init(arguments: [String]) throws {
        if let temporary = getenv("TMPDIR") { directory = String(cString: temporary) }
        var remaining = arguments[...]
        while let option = remaining.popFirst() {
            switch option {
            case "--dir":
                guard let value = remaining.popFirst() else { throw BenchmarkUsageError(message: "--dir needs a directory") }
                directory = value
            case "--rows":
                guard let value = remaining.popFirst().flatMap({ Int($0) }), value >= 10_000 else {
                    throw BenchmarkUsageError(message: "--rows needs a number of at least 10000")
                }
                rows = value
            case "--batches":
                let list = remaining.popFirst()?.split(separator: ",").compactMap { Int($0) } ?? []
                guard !list.isEmpty, list.allSatisfy({ $0 >= 1 }) else {
                    throw BenchmarkUsageError(message: "--batches needs a comma-separated list of batch sizes")
                }
                batches = list
            case "--compare-checkpoints":
                compareCheckpoints = true
            default:
                throw BenchmarkUsageError(message: """
                    usage: ringstore-bench-storage [--dir DIRECTORY] [--rows N] [--batches N,N,...] [--compare-checkpoints]
                    """)
            }
        }
    }

    func run() throws {
        print("storage engine benchmark: \(rows) rows, \(valueSize)-byte values, random positions, under \(directory)")
        var generator = SplitMix64(seed: 42)
        let records = try (0..<rows).map { index in
            try VersionedRecord(
                key: generator.bytes(count: 16),
                value: generator.bytes(count: valueSize),
                version: Version(timestamp: UInt64(index + 1), writer: 1)
            )
        }
        let workspace = try BenchmarkDirectory(parent: directory)

        let normal = StorageOptions(sync: .normal)
        for batch in batches ?? [1, 100, 1_000, 10_000, records.count] {
            try measureWrites(records, batch: batch, options: normal, in: workspace)
        }
        if batches == nil {
            try measureWrites(records, batch: 1_000, options: StorageOptions(sync: .full), in: workspace)
            // One fsync per row: a smaller run.
            try measureWrites(Array(records.prefix(5_000)), batch: 1, options: StorageOptions(sync: .full), in: workspace)
        }
        if compareCheckpoints {
            // SQLite's default checkpoint interval and a larger one, against the engine's default.
            for pages in [1_000, 65_536] {
                let options = StorageOptions(sync: .normal, checkpointPages: pages)
                try measureWrites(records, batch: 1_000, options: options, in: workspace)
            }
        }

        // Reads run on a database loaded in batches of 10,000.
        let path = workspace.path("reads.db")
        let engine = try StorageEngine(path: path, sync: .normal)
        for start in stride(from: 0, to: records.count, by: 10_000) {
            _ = try engine.apply(Array(records[start..<min(start + 10_000, records.count)]))
        }
        let keys = records.map(\.key).shuffled(using: &generator)
        var found = 0
        let readSeconds = try time {
            for key in keys where try engine.get(key: key) != nil { found += 1 }
        }
        report("get, random keys", rows: found, seconds: readSeconds)

        var foundInBatches = 0
        let batchedSeconds = try time {
            for start in stride(from: 0, to: keys.count, by: 100) {
                let batch = Array(keys[start..<min(start + 100, keys.count)])
                foundInBatches += try engine.get(keys: batch).count { $0 != nil }
            }
        }
        report("get(keys:), random keys, 100 per call", rows: foundInBatches, seconds: batchedSeconds)

        var scanned = 0
        let scanSeconds = try time {
            var cursor: ScanCursor?
            while true {
                let page = try engine.scan(arc: .wholeRing, after: cursor, limit: 1_000)
                guard let last = page.last else { break }
                scanned += page.count
                cursor = last.cursor
            }
        }
        report("scan whole ring, pages of 1000", rows: scanned, seconds: scanSeconds)

        var arcRows = 0
        let arcSeconds = try time {
            for part in 0..<16 {
                let first = UInt32(part) << 28
                arcRows += try engine.scan(arc: RingArc(first: first, last: first | ((1 << 28) - 1)), limit: .max).count
            }
        }
        report("scan 16 arcs, one call each", rows: arcRows, seconds: arcSeconds)

        var counted = 0
        let countSeconds = try time { counted = try engine.count(arc: .wholeRing).records }
        report("count(arc:) whole ring", rows: counted, seconds: countSeconds)
        try engine.close()
    }

    /// Applies `records` in batches of `batch` to a fresh database and prints rows/s.
    private func measureWrites(
        _ records: [VersionedRecord],
        batch: Int,
        options: StorageOptions,
        in workspace: BenchmarkDirectory
    ) throws {
        let path = workspace.path("write-\(batch)-\(options.sync).db")
        let engine = try StorageEngine(path: path, options: options)
        var applied = 0
        let seconds = try time {
            for start in stride(from: 0, to: records.count, by: batch) {
                applied += try engine.apply(Array(records[start..<min(start + batch, records.count)])).count { $0.wasApplied }
            }
        }
        try engine.close()
        workspace.remove(path)
        let checkpoint = options.checkpointPages == StorageOptions().checkpointPages ? "" : ", checkpoint \(options.checkpointPages)"
        report("apply, batch \(batch), sync \(options.sync)\(checkpoint)", rows: applied, seconds: seconds)
    }

    private func report(_ label: String, rows: Int, seconds: Double) {
        let padded = label.padding(toLength: 50, withPad: " ", startingAt: 0)
        let rate = Int((Double(rows) / seconds).rounded())
        print("\(padded) \(String(rows).leftPadded(8)) rows \(String(format3(seconds)).leftPadded(8)) s \(String(rate).leftPadded(10)) rows/s")
    }

    private func time(_ body: () throws -> Void) throws -> Double {
        var start = timespec()
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        try body()
        clock_gettime(CLOCK_MONOTONIC, &end)
        return Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
    }

    private func format3(_ value: Double) -> String {
        let thousandths = Int((value * 1000).rounded())
        let fraction = String(thousandths % 1000)
        return "\(thousandths / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// A scratch directory for the benchmark's databases, removed on deinit.
final class BenchmarkDirectory {
    let path: String

    init(parent: String) throws {
        var template = Array("\(parent)/ringstore-bench-storage-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw BenchmarkUsageError(message: "cannot create a directory under \(parent)")
        }
        path = String(cString: made)
    }

    deinit {
        if let entries = opendir(path) {
            while let entry = readdir(entries) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { remove("\(path)/\(name)") }
            }
            closedir(entries)
        }
        rmdir(path)
    }

    func path(_ name: String) -> String { "\(path)/\(name)" }

    func remove(_ file: String) {
        unlink(file)
        unlink(file + "-wal")
        unlink(file + "-shm")
    }
}
