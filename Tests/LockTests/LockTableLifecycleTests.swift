@testable import LockService
import RingProtocol
import Testing
import TestKit

/// The lock table across restarts, forgetting, deadlines, and waiters that give up.
@Suite struct LockTableLifecycleTests {
    @Test func restartKeepsHoldersWithAFreshFullLeaseAndTokensNeverGoBack() throws {
        var driver = TableDriver()
        // alice holds "jobs" with a 10 s lease that she once renewed at 30 s.
        let alice = try driver.grant("jobs", "alice", ttl: .seconds(30))
        _ = try driver.renew("jobs", "alice", token: alice.token, ttl: .seconds(10))
        // "free" was granted three times and is free now.
        for owner in ["a", "b", "c"] {
            let lease = try driver.grant("free", owner)
            try driver.release("free", owner, token: lease.token)
        }
        driver.advance(.seconds(5))
        let changes = driver.table.takeChanges()
        let records = changes.records
        #expect(records.map(\.name) == ["free", "jobs"])
        // One counter for every name: "jobs" took token 1, "free" 2, 3 and 4.
        #expect(records[0].holder == nil && records[0].lastToken == 4 && changes.lastToken == 4)

        // The process dies and comes back: a new monotonic origin, wall clock anywhere.
        var restarted = TableDriver()
        restarted.table = LockTable(restoring: records, lastToken: changes.lastToken, now: restarted.clock.now)
        let restored = try #require(restarted.table.holder(of: "jobs"))
        #expect(restored.owner == "alice" && restored.token == alice.token)
        #expect(restored.expiresAt == .seconds(30), "the longest ttl of the lease, counted from the restart")
        expectRefusal(.failedPrecondition, containing: "held by alice") { try restarted.acquire("jobs", "bob") }
        let (_, bob) = try restarted.acquire("jobs", "bob", wait: .seconds(60))

        // alice can still renew with her token after the restart.
        restarted.clock.advance(.seconds(1))
        let renewed = try restarted.renew("jobs", "alice", token: alice.token)
        #expect(renewed.expiresAt == .seconds(11))
        _ = restarted.take()
        restarted.advance(.seconds(10))
        let grants = TableDriver.grants(restarted.take())
        #expect(grants.map(\.waiter) == [bob])
        #expect(grants.first?.token == changes.lastToken + 1)
        let free = try restarted.grant("free", "d")
        #expect(free.token == changes.lastToken + 2)
    }

    @Test func restoringWithoutAnyRenewalWaitsTheWholeGuardTtl() throws {
        let records = [LockRecord(name: "jobs", lastToken: 7, holder: .init(owner: "alice", token: 7, ttl: .seconds(4),
                                                                            guardTTL: .seconds(4), expiresWallMicros: 0))]
        var driver = TableDriver()
        driver.table = LockTable(restoring: records, now: driver.clock.now)
        let (_, bob) = try driver.acquire("jobs", "bob", wait: .seconds(60))
        driver.advance(.milliseconds(3999))
        #expect(TableDriver.grants(driver.take()).isEmpty)
        driver.advance(.milliseconds(1))
        let effects = driver.take()
        #expect(TableDriver.grants(effects).map(\.waiter) == [bob])
        #expect(TableDriver.grants(effects).first?.token == 8)
        #expect(TableDriver.events(effects).map(\.kind) == [.expired, .lost, .acquired])
    }

    @Test func infoReportsHolderWaitersAndLastToken() throws {
        var driver = TableDriver()
        _ = try driver.grant("jobs", "alice", ttl: .seconds(5))
        try driver.acquire("jobs", "bob", wait: .seconds(3))
        let info = driver.table.info("jobs")
        #expect(info.name == "jobs" && info.hasHolder && info.holder.owner == "alice" && info.holder.token == 1)
        #expect(info.holder.ttlMillis == 5000 && info.holder.expiresUnixMicros == driver.clock.wallOrigin + 5_000_000)
        #expect(info.waiters.map(\.owner) == ["bob"])
        #expect(info.waiters.first?.waitUntilUnixMicros == driver.clock.wallOrigin + 3_000_000)
        #expect(info.lastToken == 1)
        let unknown = driver.table.info("nothing")
        #expect(!unknown.hasHolder && unknown.lastToken == 0 && unknown.waiters.isEmpty)
        #expect(driver.table.activeNames == ["jobs"])
        #expect(driver.table.counts.held == 1 && driver.table.counts.waiters == 1)
    }
    // MARK: Forgetting free locks

    @Test func aFreeLockIsForgottenAfterTheGracePeriodButItsTokensKeepIncreasing() throws {
        var driver = TableDriver(forgetAfter: .seconds(60))
        let first = try driver.grant("jobs", "alice")
        try driver.release("jobs", "alice", token: first.token)
        driver.advance(.seconds(59))
        #expect(driver.table.lastToken(of: "jobs") == first.token)
        #expect(driver.table.knownNames == 1)
        driver.advance(.seconds(1))
        #expect(driver.table.lastToken(of: "jobs") == 0, "forgotten")
        #expect(driver.table.knownNames == 0)
        #expect(driver.table.nextDeadline == nil)
        let again = try driver.grant("jobs", "bob")
        #expect(again.token > first.token)
    }

    @Test func aLockInUseIsNeverForgottenAndItsGraceStartsOverOnceItIsFree() throws {
        var driver = TableDriver(forgetAfter: .seconds(10))
        let alice = try driver.grant("jobs", "alice", ttl: .seconds(30))
        try driver.acquire("jobs", "bob", ttl: .seconds(5), wait: .seconds(100))
        driver.advance(.seconds(25))
        #expect(driver.table.knownNames == 1, "held: not forgotten")
        try driver.release("jobs", "alice", token: alice.token)  // bob gets it at 25 s, until 30 s
        let bob = try #require(driver.table.holder(of: "jobs"))
        driver.advance(.seconds(4))
        try driver.release("jobs", "bob", token: bob.token)  // free from 29 s
        driver.advance(.milliseconds(9999))
        #expect(driver.table.lastToken(of: "jobs") == bob.token)
        let carol = try driver.grant("jobs", "carol", ttl: .seconds(1))  // in use again just before its grace ran out
        driver.advance(.seconds(1))  // expired: free again, a new grace
        driver.advance(.milliseconds(9999))
        #expect(driver.table.knownNames == 1)
        driver.advance(.milliseconds(1))
        #expect(driver.table.knownNames == 0)
        #expect(try driver.grant("jobs", "dave").token > carol.token)
    }

    // MARK: Deadlines

    @Test func findingTheNextDeadlineLooksAtAFewEntriesNotAtEveryLock() throws {
        var driver = TableDriver()
        for index in 0..<10_000 { _ = try driver.grant("lock-\(index)", "owner", ttl: .seconds(600)) }
        _ = try driver.grant("soon", "owner", ttl: .seconds(1))
        try driver.acquire("soon", "waiter", wait: .milliseconds(1500))
        _ = driver.take()
        let before = driver.table.deadlineProbes
        #expect(driver.table.nextDeadline == .seconds(1))
        driver.advance(.milliseconds(500))  // nothing due
        #expect(driver.table.nextDeadline == .seconds(1))
        driver.advance(.milliseconds(500))  // soon's lease ends: the waiter gets it
        #expect(TableDriver.grants(driver.take()).map(\.owner) == ["waiter"])
        #expect(driver.table.nextDeadline == .seconds(11))
        let probes = driver.table.deadlineProbes - before
        #expect(probes < 50, "\(probes) entries looked at to find four deadlines among 10,001 locks")
    }

    @Test func theDeadlineHeapAgreesWithAScanThroughManyRandomOperations() throws {
        var driver = TableDriver(forgetAfter: .seconds(5))
        var generator = SeededGenerator(seed: 12)
        func random(_ bound: UInt64) -> UInt64 { generator.next() % bound }
        let names = (0..<40).map { "lock-\($0)" }
        let owners = (0..<6).map { "owner-\($0)" }
        for step in 0..<20_000 {
            let name = names[Int(random(UInt64(names.count)))]
            let owner = owners[Int(random(UInt64(owners.count)))]
            switch random(8) {
            case 0, 1:
                _ = try? driver.acquire(name, owner, ttl: .milliseconds(Int64(1 + random(3000))),
                                        wait: .milliseconds(Int64(random(4000))), attempt: random(3))
            case 2:
                if let lease = driver.table.holder(of: name) {
                    _ = try? driver.renew(name, lease.owner, token: lease.token, ttl: .milliseconds(Int64(1 + random(3000))))
                }
            case 3:
                if let lease = driver.table.holder(of: name) { try? driver.release(name, lease.owner, token: lease.token) }
            case 4:
                if let waiter = driver.table.waiters(of: name).first, random(2) == 0 {
                    driver.withdraw(waiter.id)
                } else {
                    _ = try? driver.cancel(name, owner, attempt: random(3))
                }
            case 5:
                if let lease = driver.table.holder(of: name), random(4) == 0 {
                    driver.revoke(name, token: lease.token)
                }
            default:
                driver.advance(.milliseconds(Int64(random(700))))
                // Everything due was applied: nothing is left at or before now.
                let overdue = driver.table.scannedNextDeadline().map { $0 <= driver.clock.monotonic } ?? false
                #expect(!overdue, "step \(step): a deadline was left behind")
            }
            _ = driver.take()
            let scanned = driver.table.scannedNextDeadline()
            let next = driver.table.nextDeadline
            #expect(next == scanned, "step \(step): the heap says \(String(describing: next)), a scan \(String(describing: scanned))")
            if next != scanned { return }
            let live = driver.table.knownNames + driver.table.counts.waiters
            #expect(driver.table.deadlineItems <= 2 * live + 1025, "step \(step): \(driver.table.deadlineItems) heap items for \(live) deadlines")
        }
    }

    @Test func renewalsDoNotGrowTheHeapAndHandoffsWithLongWaitsAreCompacted() throws {
        var driver = TableDriver()
        for index in 0..<100 { _ = try driver.grant("lock-\(index)", "owner", ttl: .seconds(3)) }
        for _ in 0..<200 {
            driver.advance(.seconds(1))
            for index in 0..<100 {
                let lease = try #require(driver.table.holder(of: "lock-\(index)"))
                _ = try driver.renew("lock-\(index)", "owner", token: lease.token)
            }
        }
        _ = driver.table.nextDeadline
        #expect(driver.table.deadlineItems <= 200, "20,000 renewals left \(driver.table.deadlineItems) heap items for 100 leases")

        // Each handoff leaves the granted waiter's hour-long wait behind as a stale item.
        var holder = try driver.grant("hot", "a")
        for round in 0..<5000 {
            let next = round % 2 == 0 ? "b" : "a"
            try driver.acquire("hot", next, wait: .seconds(3600))
            try driver.release("hot", holder.owner, token: holder.token)
            holder = try #require(driver.table.holder(of: "hot"))
            #expect(holder.owner == next)
        }
        #expect(driver.table.deadlineItems <= 2 * (driver.table.knownNames + driver.table.counts.waiters) + 1025)
        #expect(driver.table.nextDeadline == driver.table.scannedNextDeadline())
    }

    // MARK: Waiters that give up or vanish

    @Test func cancelTakesAQueuedAcquireOutOrReleasesAGrantItsClientNeverSaw() throws {
        var driver = TableDriver()
        let alice = try driver.grant("jobs", "alice")
        let (_, bob) = try driver.acquire("jobs", "bob", wait: .seconds(60), attempt: 77)
        let (_, carol) = try driver.acquire("jobs", "carol", wait: .seconds(60), attempt: 5)
        _ = driver.take()
        #expect(try driver.cancel("jobs", "bob", attempt: 78) == .nothing, "another attempt of bob's")
        #expect(try driver.cancel("jobs", "mallory", attempt: 77) == .nothing, "another owner")
        #expect(try driver.cancel("jobs", "bob", attempt: 77) == .dequeued(waiter: bob))
        #expect(try driver.cancel("jobs", "bob", attempt: 77) == .nothing, "a repeat finds nothing")
        #expect(driver.table.waiters(of: "jobs").map(\.owner) == ["carol"])
        #expect(driver.take().isEmpty, "leaving the queue is no event and nothing durable")

        // carol is granted, but gives up before she hears of it: the lock is released again.
        try driver.release("jobs", "alice", token: alice.token)
        let grant = try #require(TableDriver.grants(driver.take()).first)
        #expect(grant.waiter == carol)
        #expect(try driver.cancel("jobs", "carol", attempt: 5) == .released(token: grant.token))
        let events = TableDriver.events(driver.take())
        #expect(events.map(\.kind) == [.released] && events.first?.token == grant.token)
        #expect(events.first?.reason.contains("gave up") == true)
        #expect(driver.table.holder(of: "jobs") == nil)
        #expect(driver.table.takeChanges().records.first?.holder == nil)

        // Without an attempt id, a cancel only ever dequeues.
        let dave = try driver.grant("jobs", "dave")
        let (_, erin) = try driver.acquire("jobs", "erin", wait: .seconds(60), attempt: 9)
        #expect(try driver.cancel("jobs", "dave", attempt: 0) == .nothing, "a holder is not released without its attempt")
        #expect(try driver.cancel("jobs", "erin", attempt: 0) == .dequeued(waiter: erin))
        #expect(driver.table.holder(of: "jobs")?.token == dave.token)
        expectRefusal(.invalidArgument) { _ = try driver.cancel("", "erin", attempt: 1) }
        expectRefusal(.invalidArgument) { _ = try driver.cancel("jobs", "", attempt: 1) }
        #expect(try driver.cancel("never-seen", "erin", attempt: 1) == .nothing)
    }

    @Test func aWithdrawnWaiterLeavesItsQueueAndARevokedGrantPassesOn() throws {
        var driver = TableDriver()
        let alice = try driver.grant("jobs", "alice")
        let (_, bob) = try driver.acquire("jobs", "bob", wait: .seconds(60))
        let (_, carol) = try driver.acquire("jobs", "carol", wait: .seconds(60))
        let (_, dave) = try driver.acquire("jobs", "dave", wait: .seconds(60))
        let withdrawn = driver.withdraw(bob)
        let again = driver.withdraw(bob)
        #expect(withdrawn == "jobs" && again == nil)
        #expect(driver.table.waiters(of: "jobs").map(\.owner) == ["carol", "dave"])
        _ = driver.take()

        try driver.release("jobs", "alice", token: alice.token)
        let granted = try #require(TableDriver.grants(driver.take()).first)
        #expect(granted.waiter == carol)
        // carol's grant found her gone: taken back, dave gets the lock with a newer token.
        let wrongToken = driver.revoke("jobs", token: granted.token + 1)
        #expect(!wrongToken)
        let revoked = driver.revoke("jobs", token: granted.token)
        #expect(revoked)
        let effects = driver.take()
        #expect(TableDriver.events(effects).map(\.kind) == [.released, .acquired])
        #expect(TableDriver.grants(effects).map(\.waiter) == [dave])
        #expect(TableDriver.grants(effects).first.map { $0.token > granted.token } == true)
    }

    // MARK: Sessions (CURVE)

    @Test func aLeaseBoundToASessionIsRenewedAndReleasedOnlyByItOrAnAdmin() throws {
        var driver = TableDriver()
        let result = try driver.table.acquire(name: "jobs", owner: "app", ttl: .seconds(10), wait: .zero, session: "key-a",
                                                   waiter: 1, now: driver.clock.now, effects: &driver.effects)
        guard case .granted(let lease) = result else { throw TestFailure("not granted: \(result)") }
        #expect(lease.session == "key-a")
        // Same owner id and token, another session: refused, whoever knows the token.
        #expect(throws: LockError.self) {
            try driver.table.renew(name: "jobs", owner: "app", token: lease.token, ttl: nil, session: "key-b",
                                   now: driver.clock.now, effects: &driver.effects)
        }
        do throws(LockError) {
            try driver.table.release(name: "jobs", owner: "app", token: lease.token, session: "key-b",
                                     now: driver.clock.now, effects: &driver.effects)
            Issue.record("another session released the lease")
        } catch {
            #expect(error.kind == .permissionDenied && error.message.contains("another session"), "\(error)")
        }
        #expect(driver.table.holder(of: "jobs")?.token == lease.token)
        // The holding session renews; an admin (privileged) releases.
        _ = try driver.table.renew(name: "jobs", owner: "app", token: lease.token, ttl: nil, session: "key-a",
                                   now: driver.clock.now, effects: &driver.effects)
        try driver.table.release(name: "jobs", owner: "app", token: lease.token, session: "key-b", privileged: true,
                                 now: driver.clock.now, effects: &driver.effects)
        #expect(driver.table.holder(of: "jobs") == nil)
    }

    @Test func aQueuedWaiterIsGrantedBoundToItsOwnSessionAndTheBindingSurvivesARestart() throws {
        var driver = TableDriver()
        let first = try driver.table.acquire(name: "jobs", owner: "a", ttl: .seconds(10), wait: .zero, session: "key-a",
                                                  waiter: 1, now: driver.clock.now, effects: &driver.effects)
        guard case .granted(let held) = first else { throw TestFailure("not granted: \(first)") }
        let queued = try driver.table.acquire(name: "jobs", owner: "b", ttl: .seconds(10), wait: .seconds(5), session: "key-b",
                                                   waiter: 2, now: driver.clock.now, effects: &driver.effects)
        guard case .queued = queued else { throw TestFailure("not queued: \(queued)") }
        try driver.table.release(name: "jobs", owner: "a", token: held.token, session: "key-a", now: driver.clock.now, effects: &driver.effects)
        let next = try #require(driver.table.holder(of: "jobs"))
        #expect(next.owner == "b" && next.session == "key-b")
        let restored = LockTable(restoring: [driver.table.record(of: "jobs")], now: driver.clock.now)
        #expect(restored.holder(of: "jobs")?.session == "key-b")
        // Without CURVE (no session) nothing is bound, as before.
        var open = TableDriver()
        let lease = try open.grant("free", "c")
        #expect(lease.session == nil)
        try open.release("free", "c", token: lease.token)
    }

}
