import Basics
import RPC

/// The lock service's parked acquires and the connections they came on.
extension LockServer {
    // MARK: Waiters and their connections

    func park(_ context: RequestContext, as waiter: UInt64) {
        parked[waiter] = context
        if let peer = context.peer { parkedByPeer[peer, default: []].insert(waiter) }
    }

    func unpark(_ waiter: UInt64) -> RequestContext? {
        guard let context = parked.removeValue(forKey: waiter) else { return nil }
        if let peer = context.peer {
            parkedByPeer[peer]?.remove(waiter)
            if parkedByPeer[peer]?.isEmpty == true { parkedByPeer[peer] = nil }
        }
        return context
    }

    /// A client connection closed: its queued acquires leave their queues.
    func dropWaiters(of peer: PeerConnection) {
        guard let waiters = parkedByPeer.removeValue(forKey: peer) else { return }
        let now = now
        for waiter in waiters.sorted() {
            parked[waiter] = nil
            if let name = table.withdraw(waiter: waiter, now: now, effects: &effects) {
                logger.debug("lock.waiter.gone", metadata: ["lock.name": "\(name)", "rpc.peer": "\(peer)"])
            }
        }
        scheduleStale = true
    }

    /// A grant's reply found its client gone: the lock passes on at once
    /// rather than when the lease runs out.
    func revoke(_ lease: LockLease) {
        if table.revoke(name: lease.name, token: lease.token, reason: "the grant could not be delivered: the client is gone",
                        now: now, effects: &effects) {
            logger.info("lock.grant.undelivered", metadata: ["lock.name": "\(lease.name)", "lock.owner": "\(lease.owner)",
                                                             "lock.token": "\(lease.token)"])
        }
        scheduleStale = true
    }
}
