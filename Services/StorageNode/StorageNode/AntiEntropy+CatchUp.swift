import RPC
import RingProtocol

/// Driving the node's ``CatchUp``: ticks every `catchUpPoll`, asks live peers
/// whether they hold hints for this node (their `Stats`), queues the catch-up
/// pass when the tracker says so.
extension AntiEntropy {
    func advanceCatchUp() {
        let me = address
        let step = catchUp.tick(at: reactor.now, following: following) {
            Set((ringView()?.states ?? [:]).filter { $0.key != me && Self.isLive($0.value) }.map(\.key))
        }
        switch step {
        case .none:
            break
        case .queuePass:
            enqueue(.catchUp)
        case .askForHints(let asked):
            askForHints(asked) { [weak self] holders in
                guard let self else { return }
                if catchUp.hintsChecked(holders: holders, at: reactor.now) { enqueue(.catchUp) }
            }
        }
    }

    /// Asks each of `asked` for its Stats; `done` gets those that hold hints for this
    /// node or did not answer. (Stats counts the peer's whole table, so the tracker
    /// asks no more peers than it must.)
    private func askForHints(_ asked: Set<String>, done: @escaping (Set<String>) -> Void) {
        let me = address
        var waiting = asked.count
        var holders: Set<String> = []
        let finishOne = {
            waiting -= 1
            guard waiting == 0 else { return }
            done(holders)
        }
        for peer in asked.sorted() {
            guard let client = peers.client(for: peer) else {
                holders.insert(peer)
                finishOne()
                continue
            }
            let timeout: Duration = .seconds(2)
            client.call(StorageMethods.stats, WireStatsRequest(), timeout: timeout) { [weak self] result in
                switch result {
                case .success(let stats):
                    if let held = stats.hintsByTarget[me], held > 0 {
                        holders.insert(peer)
                        self?.logger.debug("anti_entropy.catch_up.hints_pending", metadata: ["peer.address": "\(peer)", "hints.count": "\(held)"])
                    }
                case .failure:
                    holders.insert(peer)
                }
                finishOne()
            }
        }
    }
}
