import ArgumentParser
import Basics
import Foundation
import RingstoreClient
import StorageEngine
import Synchronization

/// `ringctl backup DIR`: a consistent snapshot of every node, placement's and
/// the lock service's state, and a manifest, written into a new directory.
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up the cluster into a new directory: every node's data, placement's and the lock service's state.",
        discussion: """
            Every member placement lists makes a consistent snapshot of its database while it keeps serving; all \
            are started before any is fetched. Each is fetched in chunks and checked against the size and SHA-256 \
            its node computed, into DIR/nodes/<address>.sqlite; then come DIR/placement.json and DIR/locks.json \
            (the lock service's state, taken after every snapshot was complete) and last DIR/manifest.json \
            (format, time, version, epochs, N/W/R, per node its file, size, SHA-256, live keys and tombstones). \
            A node that cannot make or serve its snapshot, or a ring change during the backup, fails the backup: \
            nothing stays in DIR and the exit status is 1. The snapshots are deleted on the nodes at the end. \
            Progress goes to stderr; needs an admin key.
            """
    )

    @Argument(help: "The directory to write: new, or empty.")
    var directory: String

    @Option(help: ArgumentHelp("Seconds each node may take to make its snapshot.", valueName: "seconds"))
    var snapshotTimeout: Double = 600

    @Option(help: ArgumentHelp("KiB fetched per call (at most the node's limit, 1024).", valueName: "KiB"))
    var chunkKib: Int = 256

    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        guard !directory.isEmpty else { throw ValidationError("DIR must not be empty") }
        guard snapshotTimeout > 0, snapshotTimeout <= 86_400 else {
            throw ValidationError("--snapshot-timeout must be more than 0 and at most 86400 seconds")
        }
        guard (1...1024).contains(chunkKib) else { throw ValidationError("--chunk-kib must be 1...1024, not \(chunkKib)") }
    }

    func run() async throws {
        let directory = URL(fileURLWithPath: self.directory).standardizedFileURL.path
        do {
            guard try BackupFiles.isMissingOrEmptyDirectory(directory) else {
                printError("ringctl: backup: \(directory) is not empty; back up into a new or empty directory")
                throw ExitCode(1)
            }
        } catch let error as BackupError {
            printError("ringctl: backup: \(error)")
            throw ExitCode(1)
        }
        let context = try cluster.context()
        defer { context.shutdown() }
        let client = try BackupClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller, callTimeout: cluster.callTimeout)
        defer { client.close() }
        let run = BackupRun(client: client, directory: directory, snapshotTimeout: .milliseconds(Int64(snapshotTimeout * 1000)),
                            chunkBytes: chunkKib * 1024)
        let manifest: BackupManifest
        do {
            manifest = try await run.run()
        } catch {
            printError("ringctl: backup failed: \(error)")
            throw ExitCode(1)
        }
        let path = (directory as NSString).appendingPathComponent(BackupManifest.fileName)
        if cluster.json {
            print(JSONLine.encode([
                "manifest": path, "nodes": manifest.nodes.count, "live_keys": manifest.liveKeys, "tombstones": manifest.tombstones,
                "bytes": manifest.bytes, "ring_epoch": manifest.ringEpoch, "cluster_epoch": manifest.clusterEpoch,
                "lock_last_token": manifest.locks.lastToken,
            ]))
        } else {
            print("backed up \(manifest.nodes.count) nodes (\(manifest.liveKeys) live rows, \(manifest.tombstones) tombstones, " +
                  "\(BackupRun.size(manifest.bytes))) at ring epoch \(manifest.ringEpoch) into \(path)")
        }
    }
}

/// One backup: snapshots, fetches, state files and the manifest, and on any
/// failure the removal of what it wrote and the release of what it made.
final class BackupRun: Sendable {
    let client: BackupClient
    let directory: String
    let snapshotTimeout: Duration
    let chunkBytes: Int
    private let started = ContinuousClock.now
    /// Every file this run created, removed again when it fails (and nothing else).
    private let created = Mutex<[String]>([])

    init(client: BackupClient, directory: String, snapshotTimeout: Duration, chunkBytes: Int) {
        self.client = client
        self.directory = directory
        self.snapshotTimeout = snapshotTimeout
        self.chunkBytes = chunkBytes
    }

    func path(_ relative: String) -> String { (directory as NSString).appendingPathComponent(relative) }

    func progress(_ message: String) {
        let elapsed = ContinuousClock.now - started
        printError("backup: " + String(format: "%6.1fs", Double(elapsed.wholeMilliseconds) / 1000) + " " + message)
    }

    func run() async throws -> BackupManifest {
        // Directories this run made, deepest last; removed on failure only if empty by then.
        let directories = [directory, path("nodes")].filter { !FileManager.default.fileExists(atPath: $0) }
        try BackupFiles.makeDirectory(path("nodes"))
        var snapshots: [NodeSnapshot] = []
        do {
            let manifest = try await backUp(into: &snapshots)
            await release(snapshots)
            return manifest
        } catch {
            await release(snapshots)
            for file in created.withLock({ $0 }).reversed() { unlink(file) }
            for made in directories.reversed() { rmdir(made) }
            throw error
        }
    }

    /// Creates the new file `path` for this run (removed again if the run fails).
    private func newFile(_ path: String) throws -> BackupFiles.NewFile {
        let file = try BackupFiles.NewFile(path)
        created.withLock { $0.append(path) }
        return file
    }

    /// Remembers a file this run put in place under a new name.
    private func moved(to path: String) {
        created.withLock { $0.append(path) }
    }

    private func backUp(into snapshots: inout [NodeSnapshot]) async throws -> BackupManifest {
        let placement = try await call("placement's state") { client throws(RingstoreError) in try await client.placementState() }
        let members = placement.members.map(\.address)
        guard !members.isEmpty else { throw BackupError("the cluster has no members") }
        progress("cluster epoch \(placement.epoch), ring epoch \(placement.ringEpoch), \(members.count) members: " +
                 members.joined(separator: ", "))

        // Every snapshot is started before any is fetched, so they are close in time.
        let results = await withTaskGroup(of: (String, Result<NodeSnapshot, RingstoreError>).self) { group in
            for member in members {
                group.addTask { [client, snapshotTimeout] in
                    do throws(RingstoreError) {
                        return (member, .success(try await client.startSnapshot(on: member, timeout: snapshotTimeout)))
                    } catch {
                        return (member, .failure(error))
                    }
                }
            }
            var results: [String: Result<NodeSnapshot, RingstoreError>] = [:]
            for await (member, result) in group { results[member] = result }
            return results
        }
        var failures: [String] = []
        for member in members {
            switch results[member] {
            case .success(let snapshot)?:
                snapshots.append(snapshot)
                progress("snapshot of \(member): \(snapshot.liveKeys) live keys, \(snapshot.tombstones) tombstones, " +
                         "\(Self.size(snapshot.sizeBytes)), ring epoch \(snapshot.ringEpoch)")
            case .failure(let error)?:
                failures.append("node \(member): \(error)")
            case nil:
                failures.append("node \(member): no answer")
            }
        }
        guard failures.isEmpty else { throw BackupError(failures.joined(separator: "; ")) }

        // A ring change while the snapshots were made could have moved keys to a member not snapshotted.
        let after = try await call("placement's state") { client throws(RingstoreError) in try await client.placementState() }
        guard after.ringEpoch == placement.ringEpoch, Set(after.members.map(\.address)) == Set(members) else {
            throw BackupError("the ring changed during the backup (ring epoch \(placement.ringEpoch) -> \(after.ringEpoch)); run it again")
        }
        // After the snapshots: every token in them is at most this counter.
        let locks = try await call("the lock service's state") { client throws(RingstoreError) in try await client.lockState() }

        let nodes = try await fetch(snapshots)
        try BackupFiles.syncDirectory(path("nodes"))
        let placementFile = try writeState(placement.json, name: "placement.json")
        let locksFile = try writeState(locks.json, name: "locks.json")
        let micros = WallClock.micros
        let manifest = BackupManifest(
            created: Timestamp.iso8601(micros: micros), createdUnixMicros: micros, ringstoreVersion: RingstoreVersion.current,
            clusterEpoch: placement.epoch, ringEpoch: placement.ringEpoch, replicas: placement.ring.replicas,
            writeQuorum: placement.ring.writeQuorum, readQuorum: placement.ring.readQuorum, density: placement.ring.density,
            nodes: nodes, placement: placementFile,
            locks: .init(file: locksFile.file, bytes: locksFile.bytes, sha256: locksFile.sha256, lastToken: locks.lastToken,
                         names: locks.locks.count))
        // Counted as this run's before it exists: a failure from here on leaves no manifest.
        moved(to: path(BackupManifest.fileName))
        try BackupFiles.writeAtomically(try manifest.encoded(), to: path(BackupManifest.fileName))
        progress("wrote \(BackupManifest.fileName): lock token counter \(locks.lastToken), \(locks.locks.count) lock names")
        return manifest
    }

    /// Fetches every snapshot into `nodes/`, one task per node, each chunk by chunk.
    private func fetch(_ snapshots: [NodeSnapshot]) async throws -> [BackupManifest.NodeEntry] {
        try await withThrowingTaskGroup(of: BackupManifest.NodeEntry.self) { group in
            for snapshot in snapshots {
                group.addTask { [self] in
                    do {
                        return try await fetch(snapshot)
                    } catch {
                        throw BackupError("node \(snapshot.node): \(error)")
                    }
                }
            }
            var entries: [String: BackupManifest.NodeEntry] = [:]
            for try await entry in group { entries[entry.address] = entry }
            return snapshots.compactMap { entries[$0.node] }
        }
    }

    private func fetch(_ snapshot: NodeSnapshot) async throws -> BackupManifest.NodeEntry {
        let relative = BackupManifest.nodeFile(for: snapshot.node)
        let partial = path(relative + ".partial")
        let file = try newFile(partial)
        let hasher = try SHA256Hasher()
        let chunk = max(1, min(chunkBytes, snapshot.maxChunkBytes))
        var offset = 0
        while offset < snapshot.sizeBytes {
            let data = try await client.chunk(of: snapshot, offset: offset, maxBytes: min(chunk, snapshot.sizeBytes - offset))
            guard !data.isEmpty else {
                throw BackupError("the snapshot ended after \(offset) of its \(snapshot.sizeBytes) bytes")
            }
            hasher.update(data)
            try file.write(data)
            offset += data.count
        }
        try file.close()
        let sha256 = hasher.finish()
        guard offset == snapshot.sizeBytes, sha256 == snapshot.sha256 else {
            throw BackupError("the snapshot fetched (\(offset) bytes, SHA-256 \(sha256)) is not the one the node made " +
                              "(\(snapshot.sizeBytes) bytes, SHA-256 \(snapshot.sha256))")
        }
        // A new name, never over an existing file (link fails with EEXIST where rename would replace).
        guard link(partial, path(relative)) == 0 else { throw BackupFiles.failure("cannot name \(partial) \(relative)") }
        moved(to: path(relative))
        unlink(partial)
        progress("fetched \(relative) (\(Self.size(offset)), SHA-256 verified)")
        return BackupManifest.NodeEntry(address: snapshot.node, file: relative, bytes: offset, sha256: sha256,
                                        liveKeys: snapshot.liveKeys, tombstones: snapshot.tombstones,
                                        ringEpoch: snapshot.ringEpoch, completedUnixMicros: snapshot.completedUnixMicros)
    }

    /// Writes a service's state (JSON, pretty) and returns its manifest entry.
    private func writeState(_ json: String, name: String) throws -> BackupManifest.FileEntry {
        var bytes: [UInt8]
        if let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)),
           let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
            bytes = Array(pretty)
        } else {
            bytes = Array(json.utf8)
        }
        bytes.append(UInt8(ascii: "\n"))
        let file = try newFile(path(name))
        try file.write(bytes)
        try file.close()
        return BackupManifest.FileEntry(file: name, bytes: bytes.count, sha256: try SHA256Hasher.hex(of: bytes))
    }

    /// Deletes the snapshots on their nodes; a failure only warns (they expire within the hour).
    private func release(_ snapshots: [NodeSnapshot]) async {
        await withTaskGroup(of: Void.self) { group in
            for snapshot in snapshots {
                group.addTask { [client] in
                    do throws(RingstoreError) {
                        try await client.release(snapshot)
                    } catch {
                        printError("ringctl: warning: cannot delete snapshot \(snapshot.id) on \(snapshot.node) " +
                                   "(the node deletes it within the hour): \(error)")
                    }
                }
            }
        }
    }

    private func call<Response>(_ what: String, _ body: (BackupClient) async throws(RingstoreError) -> Response) async throws -> Response {
        do {
            return try await body(client)
        } catch {
            throw BackupError("cannot read \(what): \(error)")
        }
    }

    /// `1.2 MB`, `850 kB`, `12 B`.
    static func size(_ bytes: Int) -> String {
        if bytes >= 1_000_000 { return String(format: "%.1f MB", Double(bytes) / 1_000_000) }
        if bytes >= 1000 { return String(format: "%.0f kB", Double(bytes) / 1000) }
        return "\(bytes) B"
    }
}
