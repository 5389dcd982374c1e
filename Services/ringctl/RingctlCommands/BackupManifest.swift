import Foundation

/// `manifest.json` of a backup directory: what was backed up, from which
/// cluster state, and the size and SHA-256 of every file, which a restore
/// checks before it reads anything. Written last, so a directory without one
/// holds no usable backup.
struct BackupManifest: Codable, Equatable {
    static let formatName = "ringstore-backup"
    static let currentVersion = 1
    static let fileName = "manifest.json"

    /// One file of the backup, by its path relative to the backup directory.
    struct FileEntry: Codable, Equatable {
        var file: String
        var bytes: Int
        var sha256: String
    }

    /// One node's snapshot.
    struct NodeEntry: Codable, Equatable {
        var address: String
        var file: String
        var bytes: Int
        var sha256: String
        var liveKeys: Int
        var tombstones: Int
        /// The ring epoch the node followed when its snapshot was complete.
        var ringEpoch: UInt64
        var completedUnixMicros: Int64

        enum CodingKeys: String, CodingKey {
            case address, file, bytes, sha256, tombstones
            case liveKeys = "live_keys"
            case ringEpoch = "ring_epoch"
            case completedUnixMicros = "completed_unix_micros"
        }

        var fileEntry: FileEntry { FileEntry(file: file, bytes: bytes, sha256: sha256) }
    }

    /// The lock service's state file and what a restore needs of it.
    struct LocksEntry: Codable, Equatable {
        var file: String
        var bytes: Int
        var sha256: String
        /// The token counter when the backup was taken (after every snapshot was complete).
        var lastToken: UInt64
        var names: Int

        enum CodingKeys: String, CodingKey {
            case file, bytes, sha256, names
            case lastToken = "last_token"
        }

        var fileEntry: FileEntry { FileEntry(file: file, bytes: bytes, sha256: sha256) }
    }

    var format = Self.formatName
    var formatVersion = Self.currentVersion
    /// When the backup was complete, ISO 8601, and in microseconds since the Unix epoch.
    var created: String
    var createdUnixMicros: Int64
    var ringstoreVersion: String
    var clusterEpoch: UInt64
    var ringEpoch: UInt64
    var replicas: Int
    var writeQuorum: Int
    var readQuorum: Int
    var density: Int
    var nodes: [NodeEntry]
    var placement: FileEntry
    var locks: LocksEntry

    enum CodingKeys: String, CodingKey {
        case format, created, replicas, density, nodes, placement, locks
        case formatVersion = "format_version"
        case createdUnixMicros = "created_unix_micros"
        case ringstoreVersion = "ringstore_version"
        case clusterEpoch = "cluster_epoch"
        case ringEpoch = "ring_epoch"
        case writeQuorum = "write_quorum"
        case readQuorum = "read_quorum"
    }

    /// Every file the manifest lists, node snapshots first.
    var files: [FileEntry] { nodes.map(\.fileEntry) + [placement, locks.fileEntry] }

    /// Totals over the node snapshots.
    var liveKeys: Int { nodes.reduce(0) { $0 + $1.liveKeys } }
    var tombstones: Int { nodes.reduce(0) { $0 + $1.tombstones } }
    var bytes: Int { files.reduce(0) { $0 + $1.bytes } }

    /// The manifest as written: pretty, keys sorted, a newline at the end.
    func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [UInt8(ascii: "\n")]
    }

    /// Reads and checks a manifest: its format and version, and that every
    /// file it names is a plain relative path inside the backup directory.
    static func decode(_ bytes: [UInt8]) throws(BackupError) -> BackupManifest {
        let manifest: BackupManifest
        do {
            manifest = try JSONDecoder().decode(BackupManifest.self, from: Data(bytes))
        } catch {
            throw BackupError("\(fileName) is not a backup manifest: \(error)")
        }
        guard manifest.format == formatName else {
            throw BackupError("\(fileName) is not a Ringstore backup manifest (format '\(manifest.format)')")
        }
        guard manifest.formatVersion == currentVersion else {
            throw BackupError("\(fileName) has format version \(manifest.formatVersion); this ringctl reads version \(currentVersion)")
        }
        guard !manifest.nodes.isEmpty else { throw BackupError("\(fileName) lists no node snapshots") }
        for entry in manifest.files {
            guard isSafeRelativePath(entry.file) else {
                throw BackupError("\(fileName) names the file '\(entry.file)', which is not a path inside the backup directory")
            }
            guard entry.bytes >= 0, entry.sha256.count == 64 else {
                throw BackupError("\(fileName) has no valid size and SHA-256 for \(entry.file)")
            }
        }
        guard Set(manifest.files.map(\.file)).count == manifest.files.count else {
            throw BackupError("\(fileName) names a file twice")
        }
        return manifest
    }

    /// Relative, without `..` or empty components: it stays inside the directory.
    static func isSafeRelativePath(_ path: String) -> Bool {
        guard !path.isEmpty, !path.hasPrefix("/") else { return false }
        return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    /// The file a node's snapshot is kept in: `nodes/<address>.sqlite`.
    static func nodeFile(for address: String) -> String {
        "nodes/" + address.replacingOccurrences(of: "/", with: "_") + ".sqlite"
    }
}

/// A backup or restore that cannot go on; the message says why.
struct BackupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
