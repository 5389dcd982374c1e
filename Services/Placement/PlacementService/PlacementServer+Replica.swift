import ControlPlane

/// A replica of placement becoming leader or follower (with the etcd store).
extension PlacementServer {
    // MARK: Leader and follower

    /// Elected: the state is read from etcd, and failure detection starts
    /// afresh (every member's heartbeat timer starts now, as after a restart).
    func takeOver(_ term: LeaderTerm) {
        guard let client = control.etcd else { return }
        let store = EtcdPlacementStore(client: client, prefix: control.keyPrefix, term: term)
        do {
            let saved = try store.load()
            membership = saved.map { Membership(restoring: $0, settings: settings, now: now) } ?? Membership(settings: settings)
        } catch {
            control.resign("cannot read placement's state from etcd: \(error)")
            return
        }
        self.store = store
        logger.notice("placement.leading", metadata: ["cluster.epoch": "\(membership.epoch)", "cluster.members": "\(membership.members.count)",
                                                      "leader.revision": "\(term.createRevision)"])
    }

    /// No longer leader: the state is dropped (the next leader has it in etcd).
    func stepDown(_ reason: String) {
        store = nil
        membership = Membership(settings: settings)
        logger.notice("placement.following", metadata: ["leader.reason": "\(reason)"])
    }
}
