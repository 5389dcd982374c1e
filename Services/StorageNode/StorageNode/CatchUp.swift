/// A node's catch-up after a start, with no I/O: the node is caught up once it
/// follows the ring, no live peer holds hints for it any more, and a catch-up
/// pass finished without failures. Peers that held hints (or did not answer)
/// are asked again after `hintRecheck`, and only they; a catch-up pass that had
/// failures is run again after `passRetry`. Placement declaring the node down
/// starts it over. Anti-entropy ticks it and carries out what it returns.
struct CatchUp {
    enum Phase: Equatable {
        case waitingForRing, checkingHints, passQueued, caughtUp
    }

    /// What a tick asks of the shell.
    enum Step: Equatable {
        /// Nothing now.
        case none
        /// Ask these peers whether they hold hints for this node, then call ``hintsChecked(holders:at:)``.
        case askForHints(Set<String>)
        /// Queue the catch-up pass, then call ``passFinished(failures:at:)`` when it ends.
        case queuePass
    }

    /// Between hint checks that found hints.
    let hintRecheck: Duration
    /// Before a catch-up pass that had failures is run again.
    let passRetry: Duration
    private(set) var phase = Phase.waitingForRing
    private(set) var hintCheckInFlight = false
    /// Peers that held hints for this node (or did not answer) at the last check; `nil`: ask every live peer.
    private(set) var hintHolders: Set<String>?
    /// No hint check before this.
    private(set) var retryAt: ContinuousClock.Instant?

    init(hintRecheck: Duration, passRetry: Duration) {
        self.hintRecheck = hintRecheck
        self.passRetry = passRetry
    }

    var isCaughtUp: Bool { phase == .caughtUp }

    /// Moves on at `now`: `following` says whether the node follows the ring, `livePeers`
    /// are the peers to ask for hints (read only when a check starts). A check asks the
    /// live peers that held hints last time, or every live peer the first time.
    mutating func tick(at now: ContinuousClock.Instant, following: () -> Bool, livePeers: () -> Set<String>) -> Step {
        if phase == .waitingForRing {
            guard following() else { return .none }
            phase = .checkingHints
        }
        guard phase == .checkingHints, !hintCheckInFlight else { return .none }
        if let retryAt, now < retryAt { return .none }
        let live = livePeers()
        let asked = hintHolders.map { $0.intersection(live) } ?? live
        guard !asked.isEmpty else {
            hintHolders = nil
            phase = .passQueued
            return .queuePass
        }
        hintCheckInFlight = true
        return .askForHints(asked)
    }

    /// Every peer asked answered at `now`: `holders` still hold hints for this node or
    /// did not answer. Returns whether the catch-up pass is due (queue it).
    mutating func hintsChecked(holders: Set<String>, at now: ContinuousClock.Instant) -> Bool {
        hintCheckInFlight = false
        hintHolders = holders
        guard holders.isEmpty, phase == .checkingHints else {
            retryAt = now + hintRecheck
            return false
        }
        phase = .passQueued
        return true
    }

    /// The catch-up pass ended at `now` with `failures`; returns whether the node is caught up by it.
    mutating func passFinished(failures: Int, at now: ContinuousClock.Instant) -> Bool {
        guard phase == .passQueued else { return false }
        retryAt = nil
        guard failures > 0 else {
            phase = .caughtUp
            return true
        }
        phase = .checkingHints
        hintHolders = nil
        retryAt = now + passRetry
        return false
    }

    /// Placement declared this node down (writes went elsewhere); returns whether that
    /// starts the catch-up over.
    mutating func fellBehind() -> Bool {
        guard phase == .caughtUp else { return false }
        phase = .checkingHints
        hintHolders = nil
        return true
    }
}
