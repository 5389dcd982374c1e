import Basics
import Logging
import RPC
import Ring
import RingProtocol

/// Running passes: ``RepairScheduler`` says which runs next, ``RepairPass``
/// walks its arcs and peers; this shell builds the work from the ring view,
/// paces the comparisons, and reports the figures when a pass ends.
extension AntiEntropy {
    /// The pass running: its walk, and who waits for its figures.
    final class Pass {
        let reason: Reason
        let waiters: [(WireRepairReply) -> Void]
        let started: ContinuousClock.Instant
        var walk = RepairPass()

        init(reason: Reason, waiters: [(WireRepairReply) -> Void], started: ContinuousClock.Instant) {
            self.reason = reason
            self.waiters = waiters
            self.started = started
        }
    }

    /// Queues a pass (a requested pass joins one already queued and not started).
    func enqueue(_ reason: Reason, then waiter: ((WireRepairReply) -> Void)? = nil) {
        scheduler.enqueue(reason, waiter: waiter)
        runNext()
    }

    func runNext() {
        guard let next = scheduler.startNext() else { return }
        let pass = Pass(reason: next.reason, waiters: next.waiters, started: reactor.now)
        running = pass
        rebuild(pass)
        logger.debug("anti_entropy.pass.started", metadata: ["anti_entropy.reason": "\(pass.reason.rawValue)",
                                                            "anti_entropy.arcs": "\(pass.walk.work.count)"])
        step(pass)
    }

    /// The arcs of the pass from the current ring, leaving out those done already.
    private func rebuild(_ pass: Pass) {
        guard let view = ringView(), let ring = view.ring, let segments = try? ring.segments(replicas: view.replicas) else {
            pass.walk.clearWork()
            return
        }
        let plan = RepairPass.arcs(of: segments, for: address, periodic: pass.reason == .periodic, maxLength: settings.maxArcLength,
                                   live: { Self.isLive(view.states[$0]) }, pending: { Self.overlapsPending($0, view) })
        pass.walk.rebuild(plan, builtAt: (view.info.ringEpoch, view.planVersion))
    }

    /// Up, or suspect (probably only slow: if it does not answer, the pass leaves it
    /// out after one failed call). Down and unknown members are left out.
    static func isLive(_ state: WireMemberState?) -> Bool {
        state == .up || state == .suspect
    }

    static func overlapsPending(_ range: ClosedRange<UInt32>, _ view: RingView) -> Bool {
        view.pending.contains { $0.range.overlaps(range) }
    }

    /// Whether `peer` may still be compared on `range` under the current ring.
    private func stillValid(_ range: ClosedRange<UInt32>, _ peer: String) -> Bool {
        guard let view = ringView(), let ring = view.ring, Self.isLive(view.states[peer]), !Self.overlapsPending(range, view),
              let list = try? ring.preferenceList(forPosition: range.lowerBound, replicas: view.replicas).map(\.address)
        else { return false }
        return list.contains(address) && list.contains(peer)
    }

    /// Runs the pass forward: the next peer of the current arc, the next arc, or the end.
    private func step(_ pass: Pass) {
        guard running === pass else { return }
        while true {
            if pass.walk.isBetweenArcs, let view = ringView(), (view.info.ringEpoch, view.planVersion) != pass.walk.builtAt {
                rebuild(pass)
            }
            switch pass.walk.advance() {
            case .finished:
                finish(pass)
                return
            case .arcClosed:
                continue
            case .peerDue:
                break
            }
            if let wait = pacer.wait(at: reactor.now) {
                reactor.after(wait) { [weak self, weak pass] in
                    guard let self, let pass else { return }
                    step(pass)
                }
                return
            }
            guard let (range, peer) = pass.walk.takePeer(), stillValid(range, peer) else { continue }
            compare(range, with: peer) { [weak self, weak pass] tally, failure in
                guard let self, let pass, running === pass, pass.walk.compared(peer, tally, failed: failure != nil) else { return }
                totalPushed += tally.pushed
                totalPulled += tally.pulled
                NodeMetrics.shared.antiEntropyRowsPushed.increment(by: tally.pushed)
                NodeMetrics.shared.antiEntropyRowsPulled.increment(by: tally.pulled)
                if let failure {
                    totalFailures += 1
                    lastFailure = "\(peer): \(failure)"
                    logger.notice("anti_entropy.compare.failed", metadata: [
                        "peer.address": "\(peer)", "arc.first": "\(range.lowerBound)", "arc.last": "\(range.upperBound)",
                        "anti_entropy.error": "\(failure)",
                    ])
                }
                step(pass)
            }
            return
        }
    }

    private func finish(_ pass: Pass) {
        running = nil
        scheduler.finished()
        passes += 1
        let elapsed = reactor.now - pass.started
        let micros = UInt64(max(0, elapsed.wholeMicroseconds))
        let figures = pass.walk.figures
        let reply = WireRepairReply.with {
            $0.arcsCompared = UInt32(figures.arcsCompared)
            $0.arcsDiffering = UInt32(figures.arcsDiffering)
            $0.rowsPushed = UInt64(figures.rowsPushed)
            $0.rowsPulled = UInt64(figures.rowsPulled)
            $0.durationMicros = micros
        }
        let level: Logger.Level = pass.reason != .periodic || figures.arcsDiffering > 0 || figures.failures > 0 ? .info : .debug
        logger.log(level: level, "anti_entropy.pass.finished", metadata: [
            "anti_entropy.reason": "\(pass.reason.rawValue)", "anti_entropy.arcs_compared": "\(figures.arcsCompared)",
            "anti_entropy.arcs_differing": "\(figures.arcsDiffering)", "anti_entropy.rows_pushed": "\(figures.rowsPushed)",
            "anti_entropy.rows_pulled": "\(figures.rowsPulled)", "anti_entropy.failures": "\(figures.failures)",
            "anti_entropy.skipped_pending": "\(figures.skippedPending)", "anti_entropy.duration_ms": "\(micros / 1000)",
        ])
        lastPass = "\(pass.reason.rawValue) arcs=\(figures.arcsCompared) differing=\(figures.arcsDiffering) pushed=\(figures.rowsPushed) "
            + "pulled=\(figures.rowsPulled) failures=\(figures.failures) skipped_pending=\(figures.skippedPending)"
        for waiter in pass.waiters { waiter(reply) }
        // Published: every requested pass, and the periodic and catch-up passes
        // that repaired rows or failed; quiet ones (all is well: every minute
        // on some node, and on every start) are only logged.
        let worthReporting = pass.reason == .requested || figures.rowsPushed + figures.rowsPulled > 0 || figures.failures > 0
        if worthReporting {
            report(WireRepairDetails.with {
                $0.node = address
                $0.arcsCompared = reply.arcsCompared
                $0.arcsDiffering = reply.arcsDiffering
                $0.rowsPushed = reply.rowsPushed
                $0.rowsPulled = reply.rowsPulled
                $0.durationMicros = micros
                $0.reason = pass.reason.rawValue
            })
        }
        if pass.reason == .catchUp, catchUp.passFinished(failures: figures.failures, at: reactor.now) {
            logger.info("anti_entropy.caught_up", metadata: ["anti_entropy.rows_pulled": "\(figures.rowsPulled)"])
        }
        runNext()
    }
}
