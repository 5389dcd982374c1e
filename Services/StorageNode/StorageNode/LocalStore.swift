import Logging
import StorageEngine

/// The node's engine with group commit: writes and hints queued during a
/// reactor turn are committed in one transaction at the turn's end, and only
/// then are their completions (acknowledgements) run.
final class LocalStore {
    let engine: StorageEngine
    private var logger: Logger
    private var queued: [VersionedRecord] = []
    private var completions: [(range: Range<Int>, done: (Result<[ApplyResult], StorageError>) -> Void)] = []
    private var queuedHints: [(target: String, record: VersionedRecord)] = []
    /// Figures for Health and Stats.
    private(set) var commits = 0
    private(set) var largestBatch = 0

    init(engine: StorageEngine, logger: Logger) {
        self.engine = engine
        self.logger = logger
    }

    /// Queues records for this turn's commit; `done` runs after the commit.
    func enqueue(_ records: [VersionedRecord], done: @escaping (Result<[ApplyResult], StorageError>) -> Void) {
        let start = queued.count
        queued.append(contentsOf: records)
        completions.append((start..<queued.count, done))
    }

    /// Queues a hint: `record` is for `target`, which could not take it now.
    func enqueueHint(_ record: VersionedRecord, for target: String) {
        queuedHints.append((target, record))
    }

    /// Commits everything queued in one transaction each for data and hints,
    /// then runs the completions.
    func flush() {
        if !queuedHints.isEmpty {
            let hints = queuedHints
            queuedHints.removeAll(keepingCapacity: true)
            do {
                _ = try engine.hints.addHints(hints)
            } catch {
                logger.error("node.hints.store.failed", metadata: ["storage.error": "\(error)", "hints.count": "\(hints.count)"])
            }
        }
        guard !queued.isEmpty else { return }
        let records = queued
        let waiting = completions
        queued.removeAll(keepingCapacity: true)
        completions.removeAll(keepingCapacity: true)
        let result: Result<[ApplyResult], StorageError>
        do {
            result = .success(try engine.apply(records))
            commits += 1
            largestBatch = max(largestBatch, records.count)
        } catch {
            logger.error("node.commit.failed", metadata: ["storage.error": "\(error)", "commit.records": "\(records.count)"])
            result = .failure(error)
        }
        for (range, done) in waiting {
            done(result.map { Array($0[range]) })
        }
    }
}
