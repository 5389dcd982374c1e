import ArgumentParser
import Foundation
import RingstoreClient
import StorageEngine

/// `ringctl restore DIR`: loads a backup into a cluster through the normal
/// write path, so that its ring places every key anew.
struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup into a cluster (of any size) through the normal write path.",
        discussion: """
            First checks DIR/manifest.json and the size and SHA-256 of every file it names, and the key counts \
            of every node snapshot; any mismatch ends the restore before anything is written. Then raises the \
            lock service's token counter to the backup's (new tokens come after every token in the restored \
            data), merges the node snapshots by key (replicas hold copies: the newest copy wins, as replicas \
            merge; keys whose newest copy is a tombstone are skipped) and puts every live key into the cluster \
            given by --placement and --locks, with --concurrency puts in flight and the cluster's N and W. A \
            fenced key keeps its lock and token. Restored keys get new versions: they overwrite what the target \
            holds under the same keys, and other keys of the target stay (it says so when the target is not \
            empty). Placement's membership is not restored: the target's own members hold the keys, placed by \
            its ring. Prints the keys restored, the tombstones skipped and the duplicate copies merged; exits 1 \
            when any key could not be written. Progress goes to stderr; needs an admin key.
            """
    )

    @Argument(help: "The backup directory (with manifest.json).")
    var directory: String

    @Option(help: ArgumentHelp("Puts in flight.", valueName: "n"))
    var concurrency: Int = 64

    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        guard !directory.isEmpty else { throw ValidationError("DIR must not be empty") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1...4096") }
    }

    func run() async throws {
        let started = ContinuousClock.now
        let progress: @Sendable (String) -> Void = { message in
            let elapsed = Double((ContinuousClock.now - started).wholeMilliseconds) / 1000
            printError("restore: " + String(format: "%6.1fs", elapsed) + " " + message)
        }
        let backup: VerifiedBackup
        do {
            backup = try VerifiedBackup(directory: URL(fileURLWithPath: directory).standardizedFileURL.path, progress: progress)
        } catch {
            printError("ringctl: restore: \(error); nothing was written")
            throw ExitCode(1)
        }
        let context = try cluster.context()
        defer { context.shutdown() }
        let data = try KeyValueClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller,
                                      configuration: .init(timeout: cluster.callTimeout))
        defer { data.close() }
        let admin = try BackupClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller, callTimeout: cluster.callTimeout)
        defer { admin.close() }

        let counts: RestoreCounts
        let lastToken: UInt64
        do {
            try await describeTarget(context: context, progress: progress)
            // Before any data: a token granted from now on is above every token in the restored records.
            lastToken = try await admin.raiseLockTokens(atLeast: backup.manifest.locks.lastToken)
            progress("lock token counter at \(lastToken) (the backup's: \(backup.manifest.locks.lastToken))")
            counts = try await write(backup, to: data, progress: progress)
        } catch {
            printError("ringctl: restore failed: \(error)")
            throw ExitCode(1)
        }
        if cluster.json {
            print(JSONLine.encode([
                "keys_restored": counts.restored, "tombstones_skipped": counts.merge.tombstones,
                "duplicates_merged": counts.merge.duplicates, "rows_read": counts.merge.rows, "keys_failed": counts.failed.count,
                "lock_last_token": Int(lastToken), "nodes": backup.manifest.nodes.count,
            ]))
        } else {
            print("restored \(counts.restored) keys (\(counts.merge.tombstones) tombstones skipped, \(counts.merge.duplicates) " +
                  "duplicate copies merged, \(counts.merge.rows) rows read from \(backup.manifest.nodes.count) node snapshots); " +
                  "lock token counter at \(lastToken)")
        }
        if !counts.failed.isEmpty {
            let examples = counts.failed.prefix(5).map { "\(String(decoding: $0.key, as: UTF8.self)): \($0.error)" }
            printError("ringctl: restore: \(counts.failed.count) keys could not be written, e.g. \(examples.joined(separator: "; "))")
            throw ExitCode(1)
        }
    }

    /// Says what the target cluster is and whether it holds data already.
    private func describeTarget(context: ClientContext, progress: @Sendable (String) -> Void) async throws {
        let placement = try PlacementClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller,
                                            callTimeout: cluster.callTimeout)
        defer { placement.close() }
        let members: MemberList
        do {
            members = try await placement.members()
        } catch {
            throw BackupError("cannot list the target cluster's members: \(error)")
        }
        guard !members.members.isEmpty else { throw BackupError("the target cluster has no members") }
        var keys = 0
        for member in members.members {
            let node = try AdminClient(context: context, service: .node(member.address), caller: cluster.caller,
                                       callTimeout: cluster.callTimeout)
            defer { node.close() }
            if let held = try? await node.health().details["keys"].flatMap({ Int($0) }) { keys += held }
        }
        progress("target: \(members.members.count) members (\(members.members.map(\.address).joined(separator: ", ")))")
        if keys > 0 {
            printError("ringctl: restore: note: the target cluster holds data already (\(keys) live rows on its members); " +
                       "keys of the backup overwrite the same keys there (as newer writes), its other keys stay")
        }
    }

    /// Merges the snapshots and puts every live key, `concurrency` at a time.
    private func write(_ backup: VerifiedBackup, to client: KeyValueClient, progress: @Sendable (String) -> Void) async throws -> RestoreCounts {
        let merger = SnapshotMerger(readers: backup.readers)
        var restored = 0
        var failed: [(key: [UInt8], error: RingstoreError)] = []
        var nextReport = ContinuousClock.now + .seconds(2)
        try await withThrowingTaskGroup(of: ([UInt8], RingstoreError?).self) { group in
            var inFlight = 0
            func finished(_ result: ([UInt8], RingstoreError?)) {
                inFlight -= 1
                if let error = result.1 { failed.append((result.0, error)) } else { restored += 1 }
            }
            while case let batch = try merger.next(limit: 512), !batch.isEmpty {
                for record in batch {
                    guard let value = record.value else { continue }
                    while inFlight >= concurrency, let result = try await group.next() { finished(result) }
                    let fence = record.fence.map { (name: $0.name, token: $0.token) }
                    group.addTask { (record.key, await Self.put(record.key, value, fence: fence, with: client)) }
                    inFlight += 1
                }
                if ContinuousClock.now >= nextReport {
                    progress("\(restored) keys written, \(merger.counts.keys) merged of \(backup.manifest.liveKeys) live rows")
                    nextReport = ContinuousClock.now + .seconds(2)
                }
            }
            for try await result in group { finished(result) }
        }
        return RestoreCounts(restored: restored, failed: failed, merge: merger.counts)
    }

    /// One put, retried (with backoff) while the cluster answers that it cannot
    /// take it now; a retry is harmless here, it only writes the value again.
    private static func put(_ key: [UInt8], _ value: [UInt8], fence: (name: String, token: UInt64)?,
                            with client: KeyValueClient) async -> RingstoreError? {
        var backoff = Duration.milliseconds(50)
        for attempt in 1... {
            do {
                _ = try await client.put(key: key, value: value, fence: fence)
                return nil
            } catch {
                let retryable = error.code == .unavailable || error.code == .deadlineExceeded || error.code == .resourceExhausted
                    || error.code == .aborted
                guard retryable, attempt < 5 else { return error }
                try? await Task.sleep(for: backoff)
                backoff *= 2
            }
        }
        return nil
    }
}

struct RestoreCounts {
    var restored: Int
    var failed: [(key: [UInt8], error: RingstoreError)]
    var merge: SnapshotMerger.Counts
}

/// A backup directory whose manifest, file sizes, checksums and snapshot key
/// counts were all checked, with its node snapshots open read-only.
struct VerifiedBackup {
    let directory: String
    let manifest: BackupManifest
    let readers: [SnapshotReader]

    init(directory: String, progress: (String) -> Void) throws {
        self.directory = directory
        let manifest = try BackupManifest.decode(try BackupFiles.read((directory as NSString).appendingPathComponent(BackupManifest.fileName)))
        self.manifest = manifest
        for entry in manifest.files {
            let path = (directory as NSString).appendingPathComponent(entry.file)
            let actual: (sha256: String, bytes: Int)
            do {
                actual = try SHA256Hasher.file(at: path)
            } catch {
                throw BackupError("cannot read \(entry.file): \(error)")
            }
            guard actual.bytes == entry.bytes else {
                throw BackupError("\(entry.file) has \(actual.bytes) bytes, the manifest says \(entry.bytes)")
            }
            guard actual.sha256 == entry.sha256 else {
                throw BackupError("checksum mismatch: \(entry.file) has SHA-256 \(actual.sha256), the manifest says \(entry.sha256)")
            }
        }
        progress("verified \(manifest.files.count) files against \(BackupManifest.fileName) (backup of \(manifest.created), " +
                 "ring epoch \(manifest.ringEpoch), \(manifest.nodes.count) nodes)")
        var readers: [SnapshotReader] = []
        for node in manifest.nodes {
            let path = (directory as NSString).appendingPathComponent(node.file)
            do {
                let reader = try SnapshotReader(path: path)
                let counts = try reader.counts()
                guard counts.liveKeys == node.liveKeys, counts.tombstones == node.tombstones else {
                    throw BackupError("\(node.file) holds \(counts.liveKeys) live keys and \(counts.tombstones) tombstones, " +
                                      "the manifest says \(node.liveKeys) and \(node.tombstones)")
                }
                readers.append(reader)
            } catch let error as BackupError {
                throw error
            } catch {
                throw BackupError("cannot read \(node.file): \(error)")
            }
        }
        self.readers = readers
    }
}
