/// Which anti-entropy pass runs next, with no I/O: passes run one at a time in
/// the order asked. A requested or catch-up pass asked for while one of its
/// kind waits (not started) joins it: that pass answers its waiter too. A
/// periodic pass is queued only when the node is caught up and no pass runs or
/// waits, so periodic passes never pile up behind a slow one.
struct RepairScheduler<Waiter> {
    /// A pass waiting to run, and who waits for its figures.
    struct Queued {
        let reason: AntiEntropy.Reason
        var waiters: [Waiter]
    }

    private(set) var queue: [Queued] = []
    /// The reason of the pass running; `nil`: none runs.
    private(set) var running: AntiEntropy.Reason?

    /// Queues a pass for `reason` (or joins `waiter` to a waiting one of that reason).
    mutating func enqueue(_ reason: AntiEntropy.Reason, waiter: Waiter? = nil) {
        if reason != .periodic, let index = queue.firstIndex(where: { $0.reason == reason }) {
            if let waiter { queue[index].waiters.append(waiter) }
        } else {
            queue.append(Queued(reason: reason, waiters: waiter.map { [$0] } ?? []))
        }
    }

    /// The periodic timer fired: queues a periodic pass when the node is `caughtUp`
    /// and no pass runs or waits. Returns whether it did.
    mutating func queuePeriodic(caughtUp: Bool) -> Bool {
        guard caughtUp, running == nil, queue.isEmpty else { return false }
        enqueue(.periodic)
        return true
    }

    /// The pass to run now, taken off the queue; `nil` while one runs or none waits.
    mutating func startNext() -> Queued? {
        guard running == nil, !queue.isEmpty else { return nil }
        let next = queue.removeFirst()
        running = next.reason
        return next
    }

    /// The running pass ended.
    mutating func finished() {
        running = nil
    }
}
