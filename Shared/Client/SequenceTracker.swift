/// Which events of one publisher (placement, or the lock service) a watcher
/// has seen, per topic, within the incarnation of that publisher its view
/// comes from; the clone pattern's bookkeeping for ``ClusterWatch``.
///
/// An incarnation is one run of a publisher: it changes when the process
/// restarts, and when another replica becomes the leader (only the leader
/// publishes, with an incarnation of its own). The tracker remembers the
/// incarnations it moved away from: an event of one of them (a replaced
/// leader's, arriving late) is stale, and so is a late snapshot of one, so
/// neither can take the view back to an older state.
struct SequenceTracker {
    enum Verdict: Equatable {
        case seen, next, gapOrRestart
        /// Of an incarnation this tracker moved away from.
        case stale
    }

    /// What ``admit(_:resnapshot:)`` decided.
    struct Admission: Equatable {
        /// The event is news: recorded, to be shown.
        var isNew: Bool
        /// A fresh snapshot was taken and the view reset to it: to be shown before the event.
        var adoptedSnapshot: Bool
    }

    /// How many incarnations left behind are remembered.
    static let retiredKept = 16

    private var incarnation: UInt64?
    private var last: [String: UInt64] = [:]
    private var retired: [UInt64] = []

    /// Whether a snapshot of `incarnation` would change the view: another
    /// incarnation than the current one, and not one left behind.
    func isNewIncarnation(_ incarnation: UInt64) -> Bool {
        self.incarnation != incarnation && !retired.contains(incarnation)
    }

    /// Resets the view to a snapshot of `incarnation` if it is a new one (see
    /// ``isNewIncarnation(_:)``); returns whether it did.
    mutating func adopt(_ incarnation: UInt64, lastSequence: [String: UInt64]) -> Bool {
        guard isNewIncarnation(incarnation) else { return false }
        reset(incarnation: incarnation, lastSequence: lastSequence)
        return true
    }

    /// Resets the view to a snapshot of `incarnation` ending at `lastSequence`.
    mutating func reset(incarnation: UInt64, lastSequence: [String: UInt64]) {
        if let current = self.incarnation, current != incarnation {
            retired.append(current)
            if retired.count > Self.retiredKept { retired.removeFirst(retired.count - Self.retiredKept) }
        }
        retired.removeAll { $0 == incarnation }
        self.incarnation = incarnation
        last = lastSequence
    }

    func classify(_ event: ClusterEvent) -> Verdict {
        if retired.contains(event.incarnation) { return .stale }
        guard let incarnation, event.incarnation == incarnation else { return .gapOrRestart }
        let previous = last[event.topic, default: 0]
        if event.sequence <= previous { return .seen }
        return event.sequence == previous + 1 ? .next : .gapOrRestart
    }

    mutating func record(_ event: ClusterEvent) {
        if event.incarnation == incarnation { last[event.topic] = max(last[event.topic, default: 0], event.sequence) }
    }

    /// Whether `event` is news: not seen, not stale, and recorded now. After
    /// a gap or an unknown incarnation it calls `resnapshot` (which takes a
    /// snapshot, from the leader) and resets to what that returns; an event
    /// the fresh snapshot already covers is not news, nor is one of another
    /// incarnation than the snapshot's (a publisher that is not the leader the
    /// snapshot came from: the next snapshot will tell). A late snapshot of an
    /// incarnation left behind is not adopted. Without a snapshot the event
    /// passes, as the best there is.
    mutating func admit(_ event: ClusterEvent,
                        resnapshot: () async -> (incarnation: UInt64, lastSequence: [String: UInt64])?) async -> Admission {
        switch classify(event) {
        case .seen, .stale:
            return Admission(isNew: false, adoptedSnapshot: false)
        case .next:
            record(event)
            return Admission(isNew: true, adoptedSnapshot: false)
        case .gapOrRestart:
            guard let fresh = await resnapshot() else {
                record(event)
                return Admission(isNew: true, adoptedSnapshot: false)
            }
            guard !retired.contains(fresh.incarnation) else { return Admission(isNew: false, adoptedSnapshot: false) }
            reset(incarnation: fresh.incarnation, lastSequence: fresh.lastSequence)
            switch classify(event) {
            case .seen, .stale:
                return Admission(isNew: false, adoptedSnapshot: true)
            case .next, .gapOrRestart:
                guard event.incarnation == fresh.incarnation else { return Admission(isNew: false, adoptedSnapshot: true) }
                record(event)
                return Admission(isNew: true, adoptedSnapshot: true)
            }
        }
    }
}
