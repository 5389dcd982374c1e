import Basics
import Foundation
import Logging
import RPC
import RingProtocol
import StorageEngine

/// The node's side of `ringctl backup`: consistent copies of its database,
/// made while it serves, read in chunks and deleted by the operator's tool.
///
/// `Backup` starts a ``SnapshotCopy`` into `<data-dir>/backups/<id>.sqlite`
/// and steps it a few MB per reactor turn (every socket and timer is served in
/// between; the node's writes meanwhile land in the copy, see `SnapshotCopy`).
/// Once it is complete, a thread of its own seals it (out of WAL mode,
/// `quick_check`, counts, SHA-256: reads of the whole file that need not hold
/// the reactor), and the request is answered with the summary. `BackupChunk`
/// reads the sealed file; `BackupRelease` deletes it. Copies nobody released
/// are deleted `retention` after they started, and every file left in the
/// directory is deleted when the node starts (the copies of a previous run
/// were never answered for, or were fetched already).
final class NodeBackups {
    /// The largest chunk one BackupChunk returns: well below what a reply may
    /// carry, and a few milliseconds of the reactor's time to read.
    static let maxChunkBytes = 1 << 20
    /// Snapshots kept at once (in any stage): each is a full copy on the node's disk.
    static let maxSnapshots = 4
    /// Pages per step of a copy: 4 MiB at the engine's 4 KiB pages.
    static let pagesPerStep: Int32 = 1024

    private enum Stage {
        case copying(SnapshotCopy)
        case sealing
        case ready(SnapshotSummary)
    }

    private struct Snapshot {
        let path: String
        let started: ContinuousClock.Instant
        var stage: Stage
        /// The request that asked for it, answered once it is sealed.
        var requester: RequestContext?
        /// Released (or expired) while sealing: the file goes when the seal ends.
        var released = false
        var ringEpoch: UInt64 = 0
        var completedUnixMicros: Int64 = 0
    }

    let directory: URL
    private let retention: Duration
    private let engine: StorageEngine
    private let reactor: Reactor
    private let logger: Logger
    private let ringEpoch: () -> UInt64
    private var snapshots: [String: Snapshot] = [:]
    private weak var rpc: RPCServer?

    /// Prepares `directory`, deleting every file a previous run left in it.
    init(directory: URL, retention: Duration = .seconds(3600), engine: StorageEngine, reactor: Reactor, logger: Logger,
         ringEpoch: @escaping () -> UInt64) throws {
        self.directory = directory
        self.retention = retention
        self.engine = engine
        self.reactor = reactor
        self.logger = logger
        self.ringEpoch = ringEpoch
        let files = FileManager.default
        try files.createDirectory(at: directory, withIntermediateDirectories: true)
        let leftovers = try files.contentsOfDirectory(atPath: directory.path)
        for name in leftovers { try files.removeItem(at: directory.appendingPathComponent(name)) }
        if !leftovers.isEmpty {
            logger.notice("node.backup.leftovers.deleted", metadata: ["backup.files": "\(leftovers.count)", "backup.dir": "\(directory.path)"])
        }
    }

    /// Snapshots kept now, in any stage.
    var count: Int { snapshots.count }

    /// Starts the hourly expiry (checked every minute).
    func start(every: RepeatingTimers) {
        every(.seconds(60)) { [unowned self] in expire() }
    }

    func register(on rpc: RPCServer) {
        self.rpc = rpc
        rpc.register(StorageMethods.backup, role: .admin) { [unowned self] context, _ in begin(context) }
        rpc.register(StorageMethods.backupChunk, role: .admin) { [unowned self] _, request in chunk(request) }
        rpc.register(StorageMethods.backupRelease, role: .admin) { [unowned self] _, request in
            if let refusal = Self.refusal(ofID: request.id) { return .failure(refusal) }
            guard snapshots[request.id] != nil else { return .failure(Self.unknown(request.id)) }
            drop(request.id, why: "released")
            return .reply(WireBackupReleaseReply())
        }
    }

    // MARK: Making a snapshot

    private func begin(_ context: RequestContext) -> HandlerOutcome<WireBackupReply> {
        guard snapshots.count < Self.maxSnapshots else {
            return .failure(RPCError(.resourceExhausted, "this node keeps \(snapshots.count) snapshots already (at most \(Self.maxSnapshots)); " +
                                               "release them with BackupRelease or wait until they expire, \(retention) after they started"))
        }
        let id = Self.newID()
        let path = directory.appendingPathComponent("\(id).sqlite").path
        let copy: SnapshotCopy
        do {
            copy = try engine.startSnapshot(to: path)
        } catch {
            logger.error("node.backup.failed", metadata: ["backup.id": "\(id)", "storage.error": "\(error)"])
            return .failure(.internalError("cannot start a snapshot: \(error)"))
        }
        snapshots[id] = Snapshot(path: path, started: reactor.now, stage: .copying(copy), requester: context)
        logger.info("node.backup.started", metadata: ["backup.id": "\(id)", "rpc.caller": "\(context.caller)"])
        reactor.runInSteps { [weak self] in self?.step(id) ?? true }
        return .parked
    }

    /// One step of copy `id`; true when there is nothing more to step.
    private func step(_ id: String) -> Bool {
        guard let snapshot = snapshots[id], case .copying(let copy) = snapshot.stage else { return true }
        if let deadline = snapshot.requester?.deadline, reactor.now >= deadline {
            logger.error("node.backup.failed", metadata: ["backup.id": "\(id)", "backup.error": "not complete before the request's deadline"])
            drop(id, why: "abandoned", error: .deadlineExceeded("the snapshot was not complete before the request's deadline; it was abandoned"))
            return true
        }
        do {
            guard try copy.step(pages: Self.pagesPerStep) else { return false }
        } catch {
            logger.error("node.backup.failed", metadata: ["backup.id": "\(id)", "storage.error": "\(error)"])
            drop(id, why: "failed", error: .internalError("the snapshot failed while copying: \(error)"))
            return true
        }
        snapshots[id]?.stage = .sealing
        snapshots[id]?.ringEpoch = ringEpoch()
        snapshots[id]?.completedUnixMicros = WallClock.micros
        let path = snapshot.path
        let backups = ReactorBound(self, on: reactor)
        Thread.detachNewThread {
            let result: Result<SnapshotSummary, StorageError>
            do throws(StorageError) {
                result = .success(try SnapshotFile.seal(path: path))
            } catch {
                result = .failure(error)
            }
            backups.post { $0.sealed(id, result) }
        }
        return true
    }

    /// The sealing thread's answer, on the reactor thread.
    private func sealed(_ id: String, _ result: Result<SnapshotSummary, StorageError>) {
        guard let snapshot = snapshots[id] else { return }
        if snapshot.released {
            remove(id, why: "released while it was sealed")
            return
        }
        switch result {
        case .failure(let error):
            logger.error("node.backup.failed", metadata: ["backup.id": "\(id)", "storage.error": "\(error)"])
            if let requester = snapshot.requester { rpc?.fail(requester, .internalError("the snapshot could not be sealed: \(error)")) }
            remove(id, why: "failed")
        case .success(let summary):
            snapshots[id]?.stage = .ready(summary)
            snapshots[id]?.requester = nil
            logger.info("node.backup.ready", metadata: [
                "backup.id": "\(id)", "backup.bytes": "\(summary.sizeBytes)", "backup.live_keys": "\(summary.liveKeys)",
                "backup.tombstones": "\(summary.tombstones)", "backup.sha256": "\(summary.sha256)",
                "backup.millis": "\((reactor.now - snapshot.started).wholeMilliseconds)",
            ])
            guard let requester = snapshot.requester else { return }
            rpc?.reply(to: requester, .success(WireBackupReply.with {
                $0.id = id
                $0.sizeBytes = UInt64(summary.sizeBytes)
                $0.sha256 = summary.sha256
                $0.liveKeys = UInt64(summary.liveKeys)
                $0.tombstones = UInt64(summary.tombstones)
                $0.ringEpoch = snapshot.ringEpoch
                $0.completedUnixMicros = snapshot.completedUnixMicros
                $0.maxChunkBytes = UInt32(Self.maxChunkBytes)
            }))
        }
    }

    /// Ends snapshot `id`: a requester still waiting gets `error` (by default: it
    /// was `why` before it was complete), and its file is deleted, once its seal
    /// ended if it is being sealed.
    private func drop(_ id: String, why: String, error: RPCError? = nil) {
        guard var snapshot = snapshots[id] else { return }
        if let requester = snapshot.requester {
            rpc?.fail(requester, error ?? .cancelled("the snapshot was \(why) before it was complete"))
            snapshot.requester = nil
        }
        switch snapshot.stage {
        case .copying(let copy):
            copy.abandon()
        case .sealing:
            // The sealing thread still reads the file; `sealed` deletes it.
            snapshot.released = true
            snapshots[id] = snapshot
            return
        case .ready:
            break
        }
        remove(id, why: why)
    }

    /// Deletes snapshot `id`'s file and forgets it.
    private func remove(_ id: String, why: String) {
        guard let snapshot = snapshots.removeValue(forKey: id) else { return }
        unlink(snapshot.path)
        logger.info("node.backup.deleted", metadata: ["backup.id": "\(id)", "backup.why": "\(why)"])
    }

    /// Deletes the snapshots that started more than `retention` ago.
    private func expire() {
        let now = reactor.now
        for (id, snapshot) in snapshots where now - snapshot.started >= retention {
            drop(id, why: "expired", error: .deadlineExceeded("the snapshot expired \(retention) after it started"))
        }
    }

    // MARK: Reading a snapshot

    private func chunk(_ request: WireBackupChunkRequest) -> HandlerOutcome<WireBackupChunkReply> {
        if let refusal = Self.refusal(ofID: request.id) { return .failure(refusal) }
        guard let snapshot = snapshots[request.id] else { return .failure(Self.unknown(request.id)) }
        guard case .ready(let summary) = snapshot.stage else {
            return .failure(.failedPrecondition("snapshot \(request.id) is not complete yet"))
        }
        guard request.maxBytes > 0, request.maxBytes <= Self.maxChunkBytes else {
            return .failure(.invalidArgument("max_bytes must be 1...\(Self.maxChunkBytes), not \(request.maxBytes)"))
        }
        guard request.offset <= UInt64(summary.sizeBytes) else {
            return .failure(.invalidArgument("offset \(request.offset) is past the end of snapshot \(request.id) (\(summary.sizeBytes) bytes)"))
        }
        let count = min(Int(request.maxBytes), summary.sizeBytes - Int(request.offset))
        do {
            let data = try SnapshotFile.read(path: snapshot.path, offset: Int(request.offset), maxBytes: count)
            guard data.count == count else {
                return .failure(.internalError("snapshot \(request.id) is shorter on disk than the \(summary.sizeBytes) bytes it was sealed with"))
            }
            return .reply(WireBackupChunkReply.with {
                $0.data = Data(data)
                $0.sizeBytes = UInt64(summary.sizeBytes)
            })
        } catch {
            return .failure(.internalError("cannot read snapshot \(request.id): \(error)"))
        }
    }

    // MARK: Ids

    /// A new id: 128 random bits as 32 lowercase hex digits.
    static func newID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let text = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
    }

    /// Why `id` cannot be a snapshot id (it becomes part of a file name only after this check).
    static func refusal(ofID id: String) -> RPCError? {
        let hex = id.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
        guard id.utf8.count == 32, hex else {
            return .invalidArgument("a snapshot id is 32 lowercase hex digits, not '\(id.prefix(64))'")
        }
        return nil
    }

    static func unknown(_ id: String) -> RPCError {
        .notFound("no snapshot \(id) on this node (released, expired, or made before the node restarted)")
    }
}
