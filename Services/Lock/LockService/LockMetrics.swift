import CoreMetrics

/// The lock service's own metrics (the RPC layer counts requests): leases
/// granted, run out and lost as they are published; held locks and waiters
/// read from the table at each scrape.
final class LockMetrics {
    private let grants = Counter(label: "ringstore_lock_grants_total")
    private let releases = Counter(label: "ringstore_lock_releases_total")
    private let expiries = Counter(label: "ringstore_lock_expiries_total")
    private let losses = Counter(label: "ringstore_lock_lost_total")
    private let held = Gauge(label: "ringstore_locks_held")
    private let waiters = Gauge(label: "ringstore_lock_waiters")

    func published(_ event: LockEvent) {
        switch event.kind {
        case .acquired: grants.increment()
        case .released: releases.increment()
        case .expired: expiries.increment()
        case .lost: losses.increment()
        }
    }

    func record(held count: Int, waiters waiting: Int) {
        held.record(count)
        waiters.record(waiting)
    }
}
