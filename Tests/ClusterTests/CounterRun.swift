import Foundation
import RPC
import RingstoreClient
import Synchronization
import TestKit

/// What the clients of `ReplicatedLockTests`' fenced counter do and see,
/// shared between their tasks: each client takes the lock, reads the
/// counter, writes it plus one fenced with its token, and releases.
///
/// The external log (`log`, one lock for every client) has a hold per grant
/// a client received, from the moment its acquire returned to just before it
/// sent the release, and a write per acknowledged increment, all on one
/// monotonic clock (`clock`, this test process's).
final class CounterRun: Sendable {
    static let key = Array("counter".utf8)

    struct Hold: Sendable {
        let owner: String
        let token: UInt64
        let start: ContinuousClock.Instant
        let end: ContinuousClock.Instant
    }

    struct Write: Sendable {
        let owner: String
        let token: UInt64
        let value: Int
        /// When the put was acknowledged.
        let at: ContinuousClock.Instant
    }

    struct Log: Sendable {
        var holds: [Hold] = []
        var writes: [Write] = []
    }

    /// A fault the run went through.
    struct Fault: Sendable {
        let what: String
        let at: ContinuousClock.Instant
        let writesBefore: Int
        /// From the kill until a replica said it leads (lock leader kills).
        let leaderSeen: Duration?
        /// The token of the client that held the lock across it.
        let pinnedToken: UInt64?
    }

    /// A lock leader kill in the making: the first client that gets the lock
    /// once `wanted` keeps holding it across the failover (the fault task
    /// kills the leader then), and goes on once `newLeader` leads and the
    /// other clients' acquires were sent there: so a holder is live while the
    /// new leader takes over, and a new leader that forgot it would grant the
    /// lock to a second session, which the log shows.
    struct Pin: Sendable {
        var wanted = false
        var owner: String?
        var token: UInt64?
        var newLeader: String?
        var done = false
    }

    /// How long a pinned holder goes on holding once the other clients' acquires point at the new leader.
    static let slowHolderWork = Duration.seconds(1)

    let clock = ContinuousClock()
    let log = Mutex(Log())
    let pin = Mutex(Pin())
    let faults = Mutex<[Fault]>([])
    /// Indices of the clients that made all their increments.
    let finished = Mutex<Set<Int>>([])
    /// Fenced puts refused with FAILED_PRECONDITION (retried; not counted).
    let refused = Atomic<Int>(0)
    let releaseRetries = Atomic<Int>(0)
    /// Anything that makes the run's result meaningless (a put whose outcome is unknown, a lease lost).
    let problems = Mutex<[String]>([])
    let acquireErrors = Mutex<[String]>([])
    /// `expired` and `lost` events of the lock topic.
    let leaseEvents = Mutex<[String]>([])
    /// What the new leader said about the lock when a pinned holder asked.
    let pinObservations = Mutex<[String]>([])

    var writeCount: Int { log.withLock { $0.writes.count } }

    func problem(_ message: String) { problems.withLock { $0.append(message) } }

    func waitForIncrements(_ count: Int) async throws {
        try await waitUntil("\(count) increments", timeout: .seconds(120), interval: .milliseconds(20)) { writeCount >= count }
    }

    /// One client's `rounds` increments; a refused or failed one is done again.
    func increment(rounds: Int, locks: LockClient, data: KeyValueClient, others: [(index: Int, client: LockClient)]) async {
        let name = ReplicatedLockTests.lockName
        var done = 0
        while done < rounds {
            let grant: LockGrant
            do {
                grant = try await locks.acquire(name, ttl: ReplicatedLockTests.leaseTTL, wait: .seconds(30))
            } catch {
                acquireErrors.withLock { $0.append("\(locks.owner): \(error)") }
                continue
            }
            let start = clock.now
            let pinned = pin.withLock { pin in
                guard pin.wanted, pin.token == nil else { return false }
                pin.owner = locks.owner
                pin.token = grant.token
                return true
            }
            if pinned { await holdAcrossFailover(grant, locks: locks, others: others) }
            var write: Write?
            do {
                let current = try await data.get(key: Self.key)
                let next = (current.found ? Int(String(decoding: current.value, as: UTF8.self)) ?? -1_000_000 : 0) + 1
                do {
                    _ = try await data.put(key: Self.key, value: Array("\(next)".utf8), fence: (name, grant.token))
                    write = Write(owner: locks.owner, token: grant.token, value: next, at: clock.now)
                } catch where error.code == .failedPrecondition {
                    refused.add(1, ordering: .relaxed)
                } catch {
                    problem("a fenced put by \(locks.owner) with token \(grant.token) failed, it may have been applied: \(error)")
                }
            } catch {
                acquireErrors.withLock { $0.append("\(locks.owner): the read under token \(grant.token) failed: \(error)") }
            }
            let end = clock.now
            log.withLock { log in
                log.holds.append(Hold(owner: locks.owner, token: grant.token, start: start, end: end))
                if let write { log.writes.append(write) }
            }
            if write != nil { done += 1 }
            if pinned { pin.withLock { $0.done = true } }
            await release(grant, locks: locks)
        }
    }

    /// Releases `grant`, sending the release again while the leader changes
    /// (a release lost with a killed leader would otherwise keep the lock
    /// until the new leader's restored lease ran out). A repeat that finds the
    /// token stale means the first one was applied; a first one refused means
    /// the lease was lost while held.
    private func release(_ grant: LockGrant, locks: LockClient) async {
        var attempts = 0
        do {
            try await waitUntil("\(locks.owner)'s release of token \(grant.token)", timeout: .seconds(30), interval: .milliseconds(50)) {
                attempts += 1
                do throws(RPCError) {
                    try await locks.release(grant.name, token: grant.token)
                } catch where error.code == .failedPrecondition {
                    if attempts == 1 {
                        problem("\(locks.owner)'s lease of token \(grant.token) was lost while held: the release was refused: \(error)")
                    }
                } catch {
                    releaseRetries.add(1, ordering: .relaxed)
                    return false
                }
                return true
            }
        } catch {
            problem("\(locks.owner) could not release token \(grant.token): \(error)")
        }
    }

    /// The pinned holder: keeps the lock until a new leader leads and the
    /// other clients still running sent their acquires there, then asks the
    /// new leader who holds the lock.
    private func holdAcrossFailover(_ grant: LockGrant, locks: LockClient, others: [(index: Int, client: LockClient)]) async {
        var leader: String?
        do {
            try await waitUntil("a new lock leader", timeout: .seconds(30)) {
                leader = pin.withLock { $0.newLeader }
                return leader != nil
            }
        } catch {
            problem("\(locks.owner), holding token \(grant.token) across the failover, saw no new leader: \(error)")
            return
        }
        let waiting = { [self] in others.filter { !finished.withLock { $0 }.contains($0.index) } }
        // Bounded, so the lease (from before the kill) keeps a wide margin.
        try? await waitUntil("the other clients' acquires to go to the new leader", timeout: .seconds(4)) {
            waiting().allSatisfy { $0.client.endpoint == leader }
        }
        let moved = waiting().filter { $0.client.endpoint == leader }.count
        // A slow holder: it works on a while longer (well within its lease)
        // without a word to the lock service, as a holder that knows nothing
        // of the failover does. This is the workload, not a wait for a
        // condition: pointing at the new leader does not mean a client's
        // acquire was sent there yet (it may be in its backoff, up to half a
        // second), and a new leader that forgot this holder would grant the
        // lock to one of them meanwhile, which the log then shows as two holds
        // at once.
        try? await Task.sleep(for: Self.slowHolderWork)
        let status: LockInfo
        do {
            status = try await locks.status(grant.name)
        } catch {
            problem("\(locks.owner) could not ask the new leader for \(grant.name): \(error)")
            return
        }
        let holder = status.holder.map { "\($0.owner) with token \($0.token)" } ?? "nobody"
        pinObservations.withLock {
            $0.append("\(locks.owner) holding token \(grant.token); \(moved) of \(waiting().count) other clients sent to the new leader; "
                      + "it says the holder is \(holder), \(status.waiters.count) waiters; held for \(ReplicatedLockTests.seconds(clock.now - grant.sentAt)) since the acquire was sent")
        }
        if status.holder?.owner != locks.owner || status.holder?.token != grant.token {
            problem("after the failover the new leader says \(grant.name) is held by \(holder), while \(locks.owner) holds token \(grant.token)")
        }
    }
}
