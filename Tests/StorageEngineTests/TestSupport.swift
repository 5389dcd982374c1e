import Foundation
import Ring
import StorageEngine
import TestKit

/// A fresh directory under the system temporary directory, removed with everything in it on deinit.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("ringstore-engine-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    /// The path of `name` inside the directory.
    func path(_ name: String = "node.db") -> String {
        url.appendingPathComponent(name).path
    }
}


/// A record of a text key and value (`nil` for a tombstone) at timestamp `ts` by `writer`.
func record(_ key: String, _ value: String?, ts: UInt64, writer: UInt64 = 1) throws -> VersionedRecord {
    try VersionedRecord(key: Array(key.utf8), value: value.map { Array($0.utf8) }, version: Version(timestamp: ts, writer: writer))
}

/// `count` records with distinct random binary keys and random values (every tenth a
/// tombstone), versions 1...count.
func randomRecords(count: Int, seed: UInt64) throws -> [VersionedRecord] {
    var generator = SeededGenerator(seed: seed)
    var seen: Set<[UInt8]> = []
    return try (0..<count).map { index in
        var key = generator.bytes(count: Int.random(in: 1...24, using: &generator))
        while !seen.insert(key).inserted {
            key = generator.bytes(count: Int.random(in: 1...24, using: &generator))
        }
        let value = index % 10 == 9 ? nil : generator.bytes(count: Int.random(in: 0...64, using: &generator))
        return try VersionedRecord(key: key, value: value, version: Version(timestamp: UInt64(index + 1), writer: 1))
    }
}

/// Every record in the engine, in ring order from position 0.
func allRecords(_ engine: StorageEngine) throws -> [VersionedRecord] {
    try engine.scan(arc: .wholeRing, limit: Int.max)
}

/// The state merging `records` must produce: per key the greatest record, in ring order.
func expectedState(_ records: [VersionedRecord]) -> [VersionedRecord] {
    var newest: [[UInt8]: VersionedRecord] = [:]
    for record in records {
        newest[record.key] = newest[record.key].map { $0.merged(with: record) } ?? record
    }
    return newest.values.sorted(by: ringOrder(from: 0))
}

/// Clockwise order from `first`, then keys in byte order: the order of an arc scan.
func ringOrder(from first: UInt32) -> (VersionedRecord, VersionedRecord) -> Bool {
    { lhs, rhs in
        let left = lhs.position &- first
        let right = rhs.position &- first
        return left != right ? left < right : lhs.key.lexicographicallyPrecedes(rhs.key)
    }
}
