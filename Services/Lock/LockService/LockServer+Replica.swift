import ControlPlane
import RPC

/// A replica of the lock service becoming leader or follower (with the etcd store).
extension LockServer {
    // MARK: Leader and follower

    /// The table as `store` has it: holders keep their locks with a fresh
    /// lease of their longest ttl (see `LockTable(restoring:)`).
    func restore(from store: any LockStateStore) throws {
        let records = try store.load()
        let lastToken = try store.loadLastToken()
        table = LockTable(restoring: records, lastToken: lastToken, limits: limits, forgetAfter: forgetAfter, now: now)
        table.persistsWaiters = control.isReplicated
        scheduleStale = true
        if !records.isEmpty {
            logger.info("lock.restored", metadata: ["lock.names": "\(records.count)", "lock.held": "\(table.counts.held)",
                                                    "lock.waiters": "\(table.counts.waiters)", "lock.last_token": "\(table.lastToken)"])
        }
    }

    /// Elected: the table is read from etcd. Holders keep their locks (and
    /// renew through this replica); queued acquires keep their order and
    /// take their places back when their clients send them again.
    func takeOver(_ term: LeaderTerm) {
        guard let client = control.etcd else { return }
        let store = EtcdLockStore(client: client, prefix: control.keyPrefix, term: term)
        do {
            try restore(from: store)
        } catch {
            control.resign("cannot read the lock state from etcd: \(error)")
            return
        }
        self.store = store
        logger.notice("lock.leading", metadata: ["lock.last_token": "\(table.lastToken)", "leader.revision": "\(term.createRevision)"])
    }

    /// No longer leader: everything waiting is refused with `error` (its
    /// client goes to the new leader) and the table is dropped.
    func stepDown(_ reason: String, error: RPCError) {
        for reply in outbox { rpc.fail(reply.context, error) }
        outbox.removeAll()
        for waiter in parked.keys.sorted() {
            if let context = parked[waiter] { rpc.fail(context, error) }
        }
        parked.removeAll()
        parkedByPeer.removeAll()
        effects.removeAll()
        if let timer { reactor.cancelTimer(timer.id) }
        timer = nil
        store = nil
        table = LockTable(limits: limits, forgetAfter: forgetAfter)
        logger.notice("lock.following", metadata: ["leader.reason": "\(reason)"])
    }
}
