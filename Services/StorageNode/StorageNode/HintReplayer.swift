import Logging
import RingProtocol
import StorageEngine

/// Hinted handoff, the delivery side: hints this node stored for replicas that
/// could not take a write are sent to them once placement says they are up
/// again, in batches, and deleted only after the replica acknowledged them.
final class HintReplayer {
    private let store: LocalStore
    private let coordinator: Coordinator
    private let states: () -> [String: WireMemberState]
    private var logger: Logger
    private var inFlight: Set<String> = []
    /// Hints delivered since start, for Health.
    private(set) var delivered = 0
    let batchSize = 512

    init(store: LocalStore, coordinator: Coordinator, logger: Logger, states: @escaping () -> [String: WireMemberState]) {
        self.store = store
        self.coordinator = coordinator
        self.logger = logger
        self.states = states
    }

    /// Sends a batch to every up target that has hints waiting.
    func replay() {
        let counts: HintCounts
        do { counts = try store.engine.hints.pendingHintCount() } catch { return }
        let states = states()
        for target in counts.byTarget.keys where states[target] == .up && !inFlight.contains(target) {
            replay(to: target)
        }
    }

    /// Sends the next batch of hints to `target` and continues until none are left.
    func replay(to target: String) {
        guard !inFlight.contains(target) else { return }
        let hints: [Hint]
        do { hints = try store.engine.hints.hints(for: target, limit: batchSize) } catch {
            logger.error("node.hints.read.failed", metadata: ["storage.error": "\(error)"])
            return
        }
        guard !hints.isEmpty else { return }
        // Hints for keys the target no longer keeps under this node's view are moot:
        // migration gave their arcs to the new replicas, and a target that swept the
        // arc would keep such a record for good. (A target on a newer plan than this
        // node's refuses them itself: the batch goes out stamped with this node's plan.)
        let view = coordinator.ringView()
        let deliverable = hints.filter { view?.keeps(key: $0.record.key, address: target) ?? true }
        let mootHere = hints.count - deliverable.count
        guard !deliverable.isEmpty else {
            finish(hints, to: target, delivered: 0, moot: mootHere)
            return
        }
        inFlight.insert(target)
        coordinator.send(deliverable.map(\.record), to: target) { [unowned self] result in
            inFlight.remove(target)
            switch result {
            case .success(let reply):
                let refused = reply.notReplica.count { $0 }
                finish(hints, to: target, delivered: deliverable.count - refused, moot: mootHere + refused)
            case .failure(let error):
                logger.notice("node.hints.replay.failed", metadata: ["hints.target": "\(target)", "rpc.error": "\(error)"])
            }
        }
    }

    /// Deletes a batch of hints that was delivered (or was moot), then sends the next one.
    private func finish(_ hints: [Hint], to target: String, delivered count: Int, moot: Int) {
        do {
            _ = try store.engine.hints.removeHints(hints.map(\.id))
        } catch {
            logger.error("node.hints.remove.failed", metadata: ["storage.error": "\(error)"])
            return
        }
        delivered += count
        logger.info("node.hints.delivered", metadata: [
            "hints.target": "\(target)", "hints.count": "\(count)", "hints.not_replica": "\(moot)",
        ])
        if hints.count == batchSize { replay(to: target) }
    }

    /// A member left the cluster for good: its hints can never be delivered;
    /// re-replication from the survivors restores its copies.
    func drop(target: String) {
        if let dropped = try? store.engine.hints.removeAllHints(for: target), dropped > 0 {
            logger.notice("node.hints.dropped", metadata: ["hints.target": "\(target)", "hints.count": "\(dropped)"])
        }
    }
}
