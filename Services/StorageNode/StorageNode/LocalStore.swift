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
    private var hintCompletions: [(Result<Void, StorageError>) -> Void] = []
    /// Commits so far, for Health.
    private(set) var commits = 0

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

    /// Queues hints a coordinator handed to this node as a stand-in; `done`
    /// runs once they are committed.
    func enqueueHints(_ records: [VersionedRecord], for target: String, done: @escaping (Result<Void, StorageError>) -> Void) {
        for record in records { queuedHints.append((target, record)) }
        hintCompletions.append(done)
    }

    /// Commits everything queued in one transaction each for data and hints,
    /// then runs the completions.
    func flush() {
        if !queuedHints.isEmpty {
            let hints = queuedHints
            let waiting = hintCompletions
            queuedHints.removeAll(keepingCapacity: true)
            hintCompletions.removeAll(keepingCapacity: true)
            let result: Result<Void, StorageError>
            do {
                _ = try engine.hints.addHints(hints)
                result = .success(())
            } catch {
                logger.error("node.hints.store.failed", metadata: ["storage.error": "\(error)", "hints.count": "\(hints.count)"])
                result = .failure(error)
            }
            for done in waiting { done(result) }
        }
        guard !completions.isEmpty else { return }
        guard !queued.isEmpty else {
            // Only empty batches (every record refused before the commit): nothing to write.
            let waiting = completions
            completions.removeAll(keepingCapacity: true)
            for (_, done) in waiting { done(.success([])) }
            return
        }
        let records = queued
        let waiting = completions
        queued.removeAll(keepingCapacity: true)
        completions.removeAll(keepingCapacity: true)
        let result: Result<[ApplyResult], StorageError>
        do {
            result = .success(try engine.apply(records))
            commits += 1
        } catch {
            logger.error("node.commit.failed", metadata: ["storage.error": "\(error)", "commit.records": "\(records.count)"])
            result = .failure(error)
        }
        for (range, done) in waiting {
            done(result.map { Array($0[range]) })
        }
    }
}
