import RPC
import Ring

/// Sweeping: once the plan settled an arc, a node that is no longer one of its
/// replicas deletes it, in bounded steps, and only at a plan as new as the one
/// placement reported last.
extension Migrator {
    /// Deletes the arcs this node holds but no longer owns, when its plan is
    /// current and changed since the last sweep.
    func sweepIfCurrent() {
        guard let view, view.ring != nil, maySweep(), view.planVersion >= placementPlanVersion,
              sweptVersion != view.planVersion
        else { return }
        sweptVersion = view.planVersion
        let garbage = view.garbage(for: address)
        guard !garbage.isEmpty else { return }
        let version = view.planVersion
        var deleted = 0
        // In steps of a bounded number of rows, one per reactor turn; a newer plan
        // (or anything that forbids sweeping) stops it, and its own sweep follows.
        reactor.runInSteps { [weak self] in
            guard let self, sweptVersion == version, self.view?.planVersion == version else { return true }
            guard maySweep() else {
                // Not now: the next chance sweeps again.
                sweptVersion = nil
                return true
            }
            do {
                let step = try store.engine.deleteArcs(garbage, limit: ArcSteps.rowsPerDelete)
                deleted += step.deleted
                sweptKeys += step.deleted
                if step.more { return false }
            } catch {
                sweptVersion = nil
                logger.error("migration.sweep.failed", metadata: ["storage.error": "\(error)"])
                return true
            }
            if deleted > 0 {
                logger.info("migration.swept", metadata: ["swept.keys": "\(deleted)", "swept.arcs": "\(garbage.count)",
                                                          "plan.version": "\(version)"])
            }
            return true
        }
    }
}
