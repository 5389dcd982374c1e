import Foundation
import RPC
import Ring
import RingProtocol
import RingstoreClient
import Synchronization
import Testing
import TestKit
import ZeroMQ

/// `ringctl backup` and `ringctl restore` on real processes: a backup of a
/// 3-node cluster taken while a writer keeps writing, restored into a fresh
/// 4-node cluster through the normal write path.
@Suite(.serialized, .timeLimit(.minutes(10))) struct BackupProcessTests {
    @Test func aBackupUnderWriteLoadRestoresIntoAFreshClusterOfFourNodes() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-backup-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let backup = scratch.appendingPathComponent("backup")

        // MARK: The first cluster, with a fenced key and deleted keys

        // N=2 (W=2, R=2): every node holds only part of the keys, so a restore
        // that missed a node's snapshot would miss keys.
        let first = try LocalCluster(nodes: 3)
        first.placementArguments = ["--replicas", "2"]
        // No periodic anti-entropy: the replicas made to disagree below stay so until the backup.
        first.nodeArguments = ["--anti-entropy-interval", "0"]
        try await first.startAndSettle()
        // Replicas that disagree (one missed the newest write): the restore must take the newest copy.
        let ring = try HashRing(ringInfo: try await first.ringInfo())
        var diverged: [String: String] = [:]
        for index in 0..<20 {
            let key = "diverged-\(index)"
            let replicas = try ring.preferenceList(forKey: key, replicas: 2).compactMap { member in
                (0..<3).first { first.nodeAddress($0) == member.address }
            }
            #expect(replicas.count == 2)
            try await replicaWrite(first, to: replicas, key: key, value: "old", timestamp: 1_000_000 + UInt64(index))
            try await replicaWrite(first, to: [replicas[index % 2]], key: key, value: "new-\(index)", timestamp: 2_000_000 + UInt64(index))
            diverged[key] = "new-\(index)"
        }
        let firstToken = try await acquire("restore-job", in: first)
        try await release("restore-job", token: firstToken, in: first)
        let fenceToken = try await acquire("restore-job", in: first)
        #expect(fenceToken > firstToken)
        let fenced = try await ToolRun.run("ringctl", ["put", "fenced-key", "fenced-value", "--fence", "restore-job:\(fenceToken)"]
                                           + first.ringctlTarget())
        #expect(fenced.status == 0, "fenced put: \(fenced.stderr)")
        var deleted: [String] = []
        for index in 0..<20 {
            let key = "deleted-\(index)"
            let put = try await ToolRun.run("ringctl", ["put", key, "gone"] + first.ringctlTarget())
            let del = try await ToolRun.run("ringctl", ["del", key] + first.ringctlTarget())
            #expect(put.status == 0 && del.status == 0, "\(put.stderr) \(del.stderr)")
            deleted.append(key)
        }

        // MARK: Backup while a writer keeps writing

        let writer = try Writer(first)
        let writing = Task { await writer.run(concurrency: 16) }
        try await waitUntil("3000 acknowledged writes", timeout: .seconds(120), interval: .milliseconds(50)) {
            writer.acknowledged.count >= 3000
        }
        // Every key acknowledged before the backup starts must come back.
        let before = writer.acknowledged.snapshot
        let backupStarted = ContinuousClock.now
        let run = try await ToolRun.run("ringctl", ["backup", backup.path, "--json"] + first.ringctlTarget(), timeout: .seconds(180))
        let backupTook = ContinuousClock.now - backupStarted
        let duringBackup = writer.acknowledged.count - before.count
        writer.stop()
        await writing.value
        #expect(run.status == 0, "ringctl backup: \(run.stderr)")
        #expect(writer.failures.count == 0, "the writer saw failures: \(writer.failures.snapshot.prefix(3))")
        // The writes went on while the snapshots were made and fetched (nothing stopped).
        #expect(duringBackup > 0, "no write was acknowledged while the backup ran")
        #expect(run.stderr.contains("snapshot of \(first.nodeAddress(0))"), "progress on stderr: \(run.stderr)")

        // MARK: The manifest and the files

        let manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: backup.appendingPathComponent("manifest.json")))
            as? [String: Any])
        #expect(manifest["format"] as? String == "ringstore-backup" && manifest["format_version"] as? Int == 1)
        #expect(manifest["replicas"] as? Int == 2 && manifest["write_quorum"] as? Int == 2 && manifest["read_quorum"] as? Int == 2)
        #expect((manifest["ring_epoch"] as? Int ?? 0) > 0 && (manifest["cluster_epoch"] as? Int ?? 0) > 0)
        let nodes = try #require(manifest["nodes"] as? [[String: Any]])
        #expect(Set(nodes.compactMap { $0["address"] as? String }) == Set((0..<3).map(first.nodeAddress)))
        var liveRows = 0
        for node in nodes {
            let file = try #require(node["file"] as? String)
            try await expectChecksum(backup, file: file, bytes: node["bytes"] as? Int, sha256: node["sha256"] as? String)
            let live = node["live_keys"] as? Int ?? 0
            #expect(live > 0, "\(file) holds no live key")
            liveRows += live
        }
        // W=2: every acknowledged key is on both of its replicas, and no node holds all of them.
        #expect(liveRows >= 2 * before.count, "\(liveRows) live rows for \(before.count) acknowledged keys")
        #expect(nodes.allSatisfy { ($0["live_keys"] as? Int ?? 0) < before.count }, "a node holds every key: \(nodes)")
        let placementFile = try #require(manifest["placement"] as? [String: Any])
        let locksFile = try #require(manifest["locks"] as? [String: Any])
        try await expectChecksum(backup, file: placementFile["file"] as? String ?? "", bytes: placementFile["bytes"] as? Int,
                                 sha256: placementFile["sha256"] as? String)
        try await expectChecksum(backup, file: locksFile["file"] as? String ?? "", bytes: locksFile["bytes"] as? Int,
                                 sha256: locksFile["sha256"] as? String)
        let backupLastToken = UInt64(locksFile["last_token"] as? Int ?? 0)
        #expect(backupLastToken >= fenceToken)
        let locksJSON = try String(contentsOf: backup.appendingPathComponent("locks.json"), encoding: .utf8)
        #expect(locksJSON.contains("restore-job"))
        // The snapshots were released on the nodes.
        for index in 0..<3 {
            let kept = try FileManager.default.contentsOfDirectory(atPath: first.dataDirectory.appendingPathComponent("node-\(index)/backups").path)
            #expect(kept.isEmpty, "node \(index) still keeps \(kept)")
        }

        // A second backup into the same (now non-empty) directory is refused and changes nothing.
        let manifestBytes = try Data(contentsOf: backup.appendingPathComponent("manifest.json"))
        let again = try await ToolRun.run("ringctl", ["backup", backup.path] + first.ringctlTarget())
        #expect(again.status != 0)
        #expect(again.stderr.contains("is not empty"), "\(again.stderr)")
        #expect(try Data(contentsOf: backup.appendingPathComponent("manifest.json")) == manifestBytes)

        // MARK: Wipe, then a fresh cluster of four nodes

        try await first.stop()
        try FileManager.default.removeItem(at: first.dataDirectory)
        let second = try LocalCluster(nodes: 4)
        try await second.startAndSettle()

        // A backup with one byte changed in a node snapshot is refused before anything is written.
        let tampered = scratch.appendingPathComponent("tampered")
        try FileManager.default.copyItem(at: backup, to: tampered)
        let victim = tampered.appendingPathComponent(try #require(nodes.first?["file"] as? String))
        var bytes = try Data(contentsOf: victim)
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: victim)
        let refused = try await ToolRun.run("ringctl", ["restore", tampered.path] + second.ringctlTarget())
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("checksum mismatch"), "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing was written"), "\(refused.stderr)")
        #expect(refused.stdout.isEmpty)
        for index in 0..<4 {
            let stats = try await second.stats(index)
            #expect(stats.liveKeys == 0 && stats.tombstones == 0, "node \(index) holds \(stats.liveKeys) keys after the refused restore")
        }
        #expect(try await lockCounter(second) == 0, "the refused restore raised the token counter")

        // MARK: The restore

        let restoreStarted = ContinuousClock.now
        let restore = try await ToolRun.run("ringctl", ["restore", backup.path, "--json"] + second.ringctlTarget(), timeout: .seconds(300))
        let restoreTook = ContinuousClock.now - restoreStarted
        #expect(restore.status == 0, "ringctl restore: \(restore.stderr)")
        let counts = try #require(try JSONSerialization.jsonObject(with: Data(restore.stdout.utf8)) as? [String: Any])
        let restored = counts["keys_restored"] as? Int ?? 0
        #expect(restored >= before.count + 1, "restored \(restored) keys, \(before.count) were acknowledged before the backup")
        #expect(counts["keys_failed"] as? Int == 0)
        #expect((counts["tombstones_skipped"] as? Int ?? 0) >= deleted.count)
        // Every acknowledged key has at least two copies in the snapshots (W=2): the copies merged.
        #expect((counts["duplicates_merged"] as? Int ?? 0) >= before.count)
        #expect(counts["rows_read"] as? Int == liveRows + nodes.reduce(0) { $0 + ($1["tombstones"] as? Int ?? 0) })

        // Every key acknowledged before the backup started reads back with its value.
        let missing = try await second.mismatches(before)
        #expect(missing.isEmpty, "\(missing.count) of \(before.count) keys do not read back, e.g. \(missing.prefix(5))")
        #expect(try await second.mismatches(["fenced-key": "fenced-value"]).isEmpty)
        let stale = try await second.mismatches(diverged)
        #expect(stale.isEmpty, "keys restored from the replica that missed their newest write: \(stale)")
        let gone = try await ToolRun.run("ringctl", ["get", "--stdin"] + second.ringctlTarget(), stdin: deleted.joined(separator: "\n") + "\n")
        #expect(gone.stdout.split(separator: "\n").count == deleted.count && gone.stdout.split(separator: "\n").allSatisfy { $0.hasSuffix("\tNOT_FOUND") },
                "deleted keys came back: \(gone.stdout.prefix(300))")
        // The ring of four placed the keys anew: every node holds a share.
        var placed = 0
        for index in 0..<4 {
            let live = Int(try await second.stats(index).liveKeys)
            #expect(live > 0, "node \(index) of the new cluster holds nothing")
            placed += live
        }
        #expect(placed >= 2 * restored)

        // New tokens are above the backup's, and the restored fence still refuses an older holder.
        let newToken = try await acquire("restore-job", in: second)
        #expect(newToken > backupLastToken && newToken > fenceToken)
        let older = try await ToolRun.run("ringctl", ["put", "fenced-key", "stale", "--fence", "restore-job:\(firstToken)"] + second.ringctlTarget())
        #expect(older.status != 0, "a write fenced with an older token than the restored one was taken")
        let current = try await ToolRun.run("ringctl", ["put", "fenced-key", "new", "--fence", "restore-job:\(newToken)"] + second.ringctlTarget())
        #expect(current.status == 0, "\(current.stderr)")

        print("backup of \(before.count) acknowledged keys (\(liveRows) live rows) took \(backupTook), \(duringBackup) writes acknowledged meanwhile; " +
              "restore of \(restored) keys into 4 nodes took \(restoreTook)")
        try await second.stop()
    }

    @Test func nodeSnapshotsRefuseBadRequestsAndGoWhenReleasedOrRestarted() async throws {
        let cluster = try LocalCluster(nodes: 1)
        cluster.placementArguments = ["--replicas", "1"]
        try await cluster.startAndSettle()
        let put = try await ToolRun.run("ringctl", ["put", "k", "v"] + cluster.ringctlTarget())
        #expect(put.status == 0, "\(put.stderr)")
        let backups = cluster.dataDirectory.appendingPathComponent("node-0/backups")
        let admin = try cluster.nodeClient(0)
        defer { admin.close() }

        // Admin only: a client key is refused on the node, placement and the lock service.
        let keys = try #require(cluster.keys)
        let security = ClientSecurity(keys: keys.client, serverKey: keys.server.publicKey)
        func expectDenied(_ endpoint: String, _ call: (RPCClient) async throws -> Void) async throws {
            let client = try RPCClient(context: cluster.context, endpoint: endpoint, caller: "not-admin", security: security)
            defer { client.close() }
            do {
                try await call(client)
                Issue.record("a client key was let in at \(endpoint)")
            } catch {
                #expect((error as? RPCError)?.code == .permissionDenied, "\(endpoint): \(error)")
            }
        }
        try await expectDenied(cluster.nodeEndpoints[0]) { _ = try await $0.call(StorageMethods.backup, WireBackupRequest()) }
        try await expectDenied(cluster.placementEndpoint) { _ = try await $0.call(PlacementMethods.exportState, WirePlacementExportRequest()) }
        try await expectDenied(cluster.lockEndpoint) { _ = try await $0.call(LockMethods.exportState, WireLockExportRequest()) }
        try await expectDenied(cluster.lockEndpoint) {
            _ = try await $0.call(LockMethods.importTokens, WireLockImportTokensRequest.with { $0.lastToken = 99 })
        }

        let snapshot = try await admin.call(StorageMethods.backup, WireBackupRequest(), options: CallOptions(timeout: .seconds(60), maxAttempts: 1))
        #expect(snapshot.id.count == 32 && snapshot.sha256.count == 64 && snapshot.sizeBytes > 0)
        #expect(snapshot.liveKeys == 1 && snapshot.tombstones == 0 && snapshot.maxChunkBytes == 1 << 20)
        #expect(try FileManager.default.contentsOfDirectory(atPath: backups.path) == ["\(snapshot.id).sqlite"])

        func chunk(_ id: String, offset: UInt64, maxBytes: UInt32) async -> Result<WireBackupChunkReply, RPCError> {
            await admin.result(StorageMethods.backupChunk, WireBackupChunkRequest.with {
                $0.id = id
                $0.offset = offset
                $0.maxBytes = maxBytes
            })
        }
        func code(_ result: Result<WireBackupChunkReply, RPCError>) -> WireStatusCode? {
            if case .failure(let error) = result { return error.code }
            return nil
        }
        #expect(code(await chunk(snapshot.id, offset: 0, maxBytes: 0)) == .invalidArgument)
        #expect(code(await chunk(snapshot.id, offset: 0, maxBytes: 2 << 20)) == .invalidArgument)
        #expect(code(await chunk(snapshot.id, offset: snapshot.sizeBytes + 1, maxBytes: 10)) == .invalidArgument)
        #expect(code(await chunk("../../node.sqlite", offset: 0, maxBytes: 10)) == .invalidArgument)
        #expect(code(await chunk(String(repeating: "0", count: 32), offset: 0, maxBytes: 10)) == .notFound)
        let end = try await chunk(snapshot.id, offset: snapshot.sizeBytes, maxBytes: 10).get()
        #expect(end.data.isEmpty && end.sizeBytes == snapshot.sizeBytes)
        // Read whole in odd-sized chunks, it is what the node hashed.
        var file = Data()
        while UInt64(file.count) < snapshot.sizeBytes {
            file += try await chunk(snapshot.id, offset: UInt64(file.count), maxBytes: 10_000).get().data
        }
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-snapshot-\(UUID().uuidString)")
        try file.write(to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        let sum = try await ToolRun.run("/usr/bin/sha256sum", [copy.path])
        #expect(sum.stdout.hasPrefix(snapshot.sha256 + " "))

        _ = try await admin.call(StorageMethods.backupRelease, WireBackupReleaseRequest.with { $0.id = snapshot.id })
        #expect(try FileManager.default.contentsOfDirectory(atPath: backups.path).isEmpty)
        #expect(code(await chunk(snapshot.id, offset: 0, maxBytes: 10)) == .notFound)
        let again = await admin.result(StorageMethods.backupRelease, WireBackupReleaseRequest.with { $0.id = snapshot.id })
        #expect((try? again.get()) == nil)

        // One never released, and a stray file: both gone once the node restarts.
        let kept = try await admin.call(StorageMethods.backup, WireBackupRequest(), options: CallOptions(timeout: .seconds(60), maxAttempts: 1))
        _ = FileManager.default.createFile(atPath: backups.appendingPathComponent("stray").path, contents: Data([1, 2, 3]))
        try await cluster.node(0).stop()
        try await cluster.startNode(0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: backups.path).isEmpty)
        let restarted = try cluster.nodeClient(0)
        defer { restarted.close() }
        let gone = await restarted.result(StorageMethods.backupChunk, WireBackupChunkRequest.with {
            $0.id = kept.id
            $0.maxBytes = 10
        })
        #expect(code(gone) == .notFound)
        try await cluster.stop()
    }

    // MARK: Helpers

    /// `sha256sum` (coreutils, not our code) and the size agree with the manifest; the file is the owner's only.
    func expectChecksum(_ directory: URL, file: String, bytes: Int?, sha256: String?,
                        sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let path = directory.appendingPathComponent(file).path
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect(attributes[.size] as? Int == bytes, "\(file): size", sourceLocation: sourceLocation)
        #expect(attributes[.posixPermissions] as? Int == 0o600, "\(file): readable by its owner only", sourceLocation: sourceLocation)
        let sum = try await ToolRun.run("/usr/bin/sha256sum", [path])
        #expect(sum.stdout.split(separator: " ").first.map(String.init) == sha256, "\(file): \(sum.stdout)", sourceLocation: sourceLocation)
    }

    /// Writes `key` straight to the given nodes as a replica write (no coordinator, no hints).
    func replicaWrite(_ cluster: LocalCluster, to nodes: [Int], key: String, value: String, timestamp: UInt64) async throws {
        let record = WireRecord.with {
            $0.key = Data(key.utf8)
            $0.value = Data(value.utf8)
            $0.version = WireVersion.with { $0.timestamp = timestamp; $0.writer = 99 }
        }
        for node in nodes {
            let client = try cluster.nodeClient(node)
            defer { client.close() }
            _ = try await client.call(StorageMethods.replicaWrite, WireReplicaWriteRequest.with { $0.records = [record] })
        }
    }

    /// Acquires `name` as owner `tester` with `ringctl lock acquire`; returns the token.
    func acquire(_ name: String, in cluster: LocalCluster) async throws -> UInt64 {
        let run = try await ToolRun.run("ringctl", ["lock", "acquire", name, "--ttl", "60", "--owner", "tester"] + cluster.ringctlTarget())
        #expect(run.status == 0, "lock acquire: \(run.stderr)")
        return try #require(UInt64(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    func release(_ name: String, token: UInt64, in cluster: LocalCluster) async throws {
        let run = try await ToolRun.run("ringctl", ["lock", "release", name, "--token", "\(token)", "--owner", "tester"] + cluster.ringctlTarget())
        #expect(run.status == 0, "lock release: \(run.stderr)")
    }

    /// The lock service's token counter.
    func lockCounter(_ cluster: LocalCluster) async throws -> UInt64 {
        let client = try cluster.rpc(cluster.lockEndpoint)
        defer { client.close() }
        return try await client.call(LockMethods.exportState, WireLockExportRequest()).lastToken
    }
}

/// Writes unique keys through the client library, `concurrency` at a time,
/// until stopped, and records every write acknowledged.
final class Writer: Sendable {
    let acknowledged = Recorded<String, String>()
    let failures = Recorded<String, String>()
    private let client: KeyValueClient
    private let context: ZMQContext
    private let stopped = Atomic<Bool>(false)

    init(_ cluster: LocalCluster) throws {
        context = try ZMQContext()
        client = try KeyValueClient(context: cluster.clientContext(context: context),
                                    endpoints: ClusterEndpoints(placement: cluster.placementEndpoint, locks: cluster.lockEndpoint),
                                    caller: "backup-writer")
    }

    deinit {
        client.close()
        context.shutdown()
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    func run(concurrency: Int) async {
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<concurrency {
                group.addTask { [self] in
                    var index = 0
                    while !stopped.load(ordering: .relaxed) {
                        let key = "key-\(lane)-\(index)"
                        let value = "value-\(lane)-\(index)-" + String(repeating: "x", count: 64)
                        index += 1
                        do {
                            _ = try await client.put(key: Array(key.utf8), value: Array(value.utf8))
                            acknowledged.add(key, value)
                        } catch {
                            failures.add(key, "\(error)")
                        }
                    }
                }
            }
        }
    }
}

/// Key-value pairs recorded from many tasks.
final class Recorded<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let entries = Mutex<[Key: Value]>([:])

    func add(_ key: Key, _ value: Value) { entries.withLock { $0[key] = value } }
    var count: Int { entries.withLock { $0.count } }
    var snapshot: [Key: Value] { entries.withLock { $0 } }
}
