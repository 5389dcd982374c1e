import Foundation
@testable import RingctlCommands
import Testing

@Suite struct BackupManifestTests {
    static let sha = String(repeating: "ab", count: 32)

    static func manifest(nodeFile: String = "nodes/10.0.0.1:7501.sqlite") -> BackupManifest {
        BackupManifest(
            created: "2026-12-03T08:00:00.000Z", createdUnixMicros: 1_796_284_800_000_000, ringstoreVersion: "0.1.0",
            clusterEpoch: 12, ringEpoch: 9, replicas: 3, writeQuorum: 2, readQuorum: 2, density: 40,
            nodes: [.init(address: "10.0.0.1:7501", file: nodeFile, bytes: 4096, sha256: sha, liveKeys: 10, tombstones: 2,
                          ringEpoch: 9, completedUnixMicros: 1_796_284_799_000_000)],
            placement: .init(file: "placement.json", bytes: 100, sha256: sha),
            locks: .init(file: "locks.json", bytes: 50, sha256: sha, lastToken: UInt64.max - 1, names: 3))
    }

    @Test func roundTripsWithSnakeCaseKeysAndExactTokens() throws {
        let original = Self.manifest()
        let bytes = try original.encoded()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains("\"format_version\" : 1") && text.contains("\"live_keys\" : 10") && text.contains("\"last_token\" : 18446744073709551614"))
        #expect(text.hasSuffix("}\n"))
        #expect(try BackupManifest.decode(bytes) == original)
        #expect(original.liveKeys == 10 && original.tombstones == 2 && original.bytes == 4096 + 100 + 50)
        #expect(original.files.map(\.file) == ["nodes/10.0.0.1:7501.sqlite", "placement.json", "locks.json"])
    }

    @Test(arguments: ["../outside.sqlite", "/etc/passwd", "nodes//x.sqlite", "nodes/./x.sqlite", "", "nodes/../../x"])
    func refusesPathsOutsideTheDirectory(file: String) throws {
        let bytes = try Self.manifest(nodeFile: file).encoded()
        #expect(throws: BackupError.self) { try BackupManifest.decode(bytes) }
    }

    @Test func refusesOtherFormatsVersionsAndDuplicates() throws {
        var other = Self.manifest()
        other.format = "something-else"
        #expect(throws: BackupError.self) { try BackupManifest.decode(try other.encoded()) }
        var newer = Self.manifest()
        newer.formatVersion = 2
        #expect(throws: BackupError.self) { try BackupManifest.decode(try newer.encoded()) }
        var twice = Self.manifest()
        twice.placement.file = "locks.json"
        #expect(throws: BackupError.self) { try BackupManifest.decode(try twice.encoded()) }
        var empty = Self.manifest()
        empty.nodes = []
        #expect(throws: BackupError.self) { try BackupManifest.decode(try empty.encoded()) }
        #expect(throws: BackupError.self) { try BackupManifest.decode(Array("{\"format\": 1}".utf8)) }
    }

    @Test func nodeFilesAreNamedByAddress() {
        #expect(BackupManifest.nodeFile(for: "127.0.0.1:7501") == "nodes/127.0.0.1:7501.sqlite")
        #expect(BackupManifest.isSafeRelativePath(BackupManifest.nodeFile(for: "host/with/slash:1")))
    }

    @Test func optionsAreChecked() {
        DataCommandArgumentTests.expectRefused(["backup", "dir", "--chunk-kib", "0"], "--chunk-kib must be 1...1024, not 0")
        DataCommandArgumentTests.expectRefused(["backup", "dir", "--snapshot-timeout", "0"],
                                               "--snapshot-timeout must be more than 0 and at most 86400 seconds")
        DataCommandArgumentTests.expectRefused(["restore", "dir", "--concurrency", "0"], "--concurrency must be 1...4096")
        DataCommandArgumentTests.expectRefused(["backup"], "Missing expected argument '<directory>'")
    }
}
