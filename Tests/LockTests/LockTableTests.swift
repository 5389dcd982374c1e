@testable import LockService
import RingProtocol
import Testing
import TestKit

@Suite struct LockTableTests {
    @Test func aFreeLockIsGrantedAtOnceWithTokenOneAndAnAcquiredEvent() throws {
        var driver = TableDriver()
        let lease = try driver.grant("jobs", "alice", ttl: .seconds(5))
        #expect(lease.token == 1 && lease.owner == "alice" && lease.name == "jobs")
        #expect(lease.expiresAt == .seconds(5))
        #expect(lease.expiresWallMicros == driver.clock.wallOrigin + 5_000_000)
        let events = TableDriver.events(driver.take())
        #expect(events.map(\.kind) == [.acquired])
        #expect(events.first?.token == 1 && events.first?.owner == "alice")
        #expect(driver.table.holder(of: "jobs")?.owner == "alice")
        #expect(driver.table.lastToken(of: "jobs") == 1)
        #expect(driver.table.takeChanges() == LockChanges(records: [driver.table.record(of: "jobs")], lastToken: 1))
    }

    @Test func tryAcquireOfAHeldLockIsRefusedWithItsHolder() throws {
        var driver = TableDriver()
        _ = try driver.grant("jobs", "alice")
        expectRefusal(.failedPrecondition, containing: "held by alice with token 1") {
            try driver.acquire("jobs", "bob")
        }
        #expect(driver.table.waiters(of: "jobs").isEmpty)
    }

    @Test func waitersAreGrantedInFIFOOrderWithIncreasingTokens() throws {
        var driver = TableDriver()
        let first = try driver.grant("jobs", "alice")
        var waiters: [String: UInt64] = [:]
        for owner in ["bob", "carol", "dave"] {
            let (result, id) = try driver.acquire("jobs", owner, wait: .seconds(60))
            #expect(result == .queued(position: waiters.count + 1))
            waiters[owner] = id
        }
        #expect(driver.table.waiters(of: "jobs").map(\.owner) == ["bob", "carol", "dave"])
        _ = driver.take()

        var holder = ("alice", first.token)
        var order: [String] = []
        for _ in 0..<3 {
            driver.clock.advance(.seconds(1))
            try driver.release("jobs", holder.0, token: holder.1)
            let effects = driver.take()
            let grants = TableDriver.grants(effects)
            #expect(grants.count == 1)
            guard let grant = grants.first else { return }
            #expect(grant.waiter == waiters[grant.owner])
            #expect(grant.token == holder.1 + 1)
            #expect(TableDriver.events(effects).map(\.kind) == [.released, .acquired])
            order.append(grant.owner)
            holder = (grant.owner, grant.token)
        }
        #expect(order == ["bob", "carol", "dave"])
        try driver.release("jobs", "dave", token: holder.1)
        #expect(driver.table.holder(of: "jobs") == nil)
        #expect(driver.table.activeNames.isEmpty)
        #expect(driver.table.lastToken(of: "jobs") == 4)
    }

    @Test func anExpiredLeaseHandsTheLockToTheNextWaiter() throws {
        var driver = TableDriver()
        let alice = try driver.grant("jobs", "alice", ttl: .seconds(5))
        let (_, bobWaiter) = try driver.acquire("jobs", "bob", ttl: .seconds(7), wait: .seconds(60))
        _ = driver.take()
        #expect(driver.table.nextDeadline == .seconds(5))

        driver.advance(.milliseconds(4999))
        #expect(driver.take().isEmpty)
        driver.advance(.milliseconds(1))
        let effects = driver.take()
        let events = TableDriver.events(effects)
        #expect(events.map(\.kind) == [.expired, .lost, .acquired])
        #expect(events[0].owner == "alice" && events[0].token == alice.token && events[0].reason.contains("not renewed"))
        #expect(events[1].owner == "alice")
        #expect(events[2].owner == "bob" && events[2].token == alice.token + 1)
        let grants = TableDriver.grants(effects)
        #expect(grants.map(\.waiter) == [bobWaiter])
        #expect(driver.table.holder(of: "jobs")?.expiresAt == .seconds(12))

        // Alice's token is stale now: renew and release are refused.
        expectRefusal(.failedPrecondition, containing: "stale") { _ = try driver.renew("jobs", "alice", token: alice.token) }
        expectRefusal(.failedPrecondition, containing: "held by bob with token 2") { try driver.release("jobs", "alice", token: alice.token) }
    }

    @Test func expiryWithoutWaitersFreesTheLockAndTheNextGrantGetsANewToken() throws {
        var driver = TableDriver()
        _ = try driver.grant("jobs", "alice", ttl: .seconds(1))
        _ = driver.take()
        driver.advance(.seconds(1))
        #expect(TableDriver.events(driver.take()).map(\.kind) == [.expired, .lost])
        #expect(driver.table.holder(of: "jobs") == nil)
        #expect(driver.table.nextDeadline == .seconds(1) + driver.table.forgetAfter, "only its forget time is left")
        expectRefusal(.failedPrecondition, containing: "not held") { _ = try driver.renew("jobs", "alice", token: 1) }
        let again = try driver.grant("jobs", "alice")
        #expect(again.token == 2)
    }

    @Test func expiryIsAppliedLazilyWhenARequestComesBeforeTheTick() throws {
        var driver = TableDriver()
        _ = try driver.grant("jobs", "alice", ttl: .seconds(1))
        driver.clock.advance(.seconds(2))  // no tick
        let bob = try driver.grant("jobs", "bob")
        #expect(bob.token == 2)
        #expect(TableDriver.events(driver.take()).map(\.kind) == [.acquired, .expired, .lost, .acquired])
    }

    @Test func renewExtendsTheLeaseFromNowAndOnlyTtlChangesAreDurable() throws {
        var driver = TableDriver()
        let lease = try driver.grant("jobs", "alice", ttl: .seconds(5))
        _ = driver.table.takeChanges()
        _ = driver.take()
        driver.advance(.seconds(4))
        let renewed = try driver.renew("jobs", "alice", token: lease.token)
        #expect(renewed.expiresAt == .seconds(9) && renewed.ttl == .seconds(5) && renewed.token == lease.token)
        #expect(!driver.table.hasChanges)
        driver.advance(.seconds(4))
        #expect(driver.take().isEmpty)  // still held at 8 s

        let longer = try driver.renew("jobs", "alice", token: lease.token, ttl: .seconds(30))
        #expect(longer.expiresAt == .seconds(38) && longer.guardTTL == .seconds(30))
        let shorter = try driver.renew("jobs", "alice", token: lease.token, ttl: .seconds(2))
        #expect(shorter.expiresAt == .seconds(10) && shorter.ttl == .seconds(2))
        #expect(shorter.guardTTL == .seconds(30), "a restart must still honour the 30 s lease the holder may believe in")
        #expect(driver.table.takeChanges().records.first?.holder?.guardTTL == .seconds(30))
    }

    @Test func wrongOwnerOrTokenIsRefusedWithoutChangingAnything() throws {
        var driver = TableDriver()
        _ = try driver.grant("jobs", "alice")
        _ = try driver.grant("jobs2", "alice")
        _ = driver.take()
        _ = driver.table.takeChanges()
        expectRefusal(.failedPrecondition, containing: "held by alice, not mallory") { try driver.release("jobs", "mallory", token: 1) }
        expectRefusal(.failedPrecondition, containing: "held by alice, not mallory") { _ = try driver.renew("jobs", "mallory", token: 1) }
        expectRefusal(.failedPrecondition, containing: "never granted") { try driver.release("jobs", "alice", token: 9) }
        expectRefusal(.failedPrecondition, containing: "never granted") { try driver.release("unknown", "alice", token: 3) }
        expectRefusal(.failedPrecondition, containing: "is not held") { try driver.release("unknown", "alice", token: 1) }
        try driver.release("jobs", "alice", token: 1)
        // A repeated release (a lost reply) finds the token gone.
        expectRefusal(.failedPrecondition, containing: "expired or was released") { try driver.release("jobs", "alice", token: 1) }
        #expect(driver.table.holder(of: "jobs2")?.owner == "alice")
    }

    @Test func reacquireByTheHolderIsRefusedAndAnOwnerQueuesOnlyOnce() throws {
        var driver = TableDriver()
        _ = try driver.grant("jobs", "alice")
        expectRefusal(.failedPrecondition, containing: "already held by you (alice) with token 1") { try driver.acquire("jobs", "alice") }
        expectRefusal(.failedPrecondition, containing: "already held by you") { try driver.acquire("jobs", "alice", wait: .seconds(10)) }
        try driver.acquire("jobs", "bob", wait: .seconds(10))
        expectRefusal(.failedPrecondition, containing: "already waiting") { try driver.acquire("jobs", "bob", wait: .seconds(10)) }
        #expect(driver.table.waiters(of: "jobs").map(\.owner) == ["bob"])
        #expect(driver.table.holder(of: "jobs")?.token == 1)
    }

    @Test func aWaiterWhoseDeadlinePassedIsAnsweredAndNeverGranted() throws {
        var driver = TableDriver()
        let alice = try driver.grant("jobs", "alice", ttl: .seconds(10))
        let (_, bob) = try driver.acquire("jobs", "bob", wait: .seconds(2))
        let (_, carol) = try driver.acquire("jobs", "carol", wait: .seconds(10))  // ends exactly with alice's lease
        let (_, dave) = try driver.acquire("jobs", "dave", wait: .seconds(20))
        _ = driver.take()
        #expect(driver.table.nextDeadline == .seconds(2))

        driver.advance(.seconds(2))
        var effects = driver.take()
        #expect(TableDriver.timeouts(effects) == [bob])
        #expect(TableDriver.grants(effects).isEmpty)
        #expect(driver.table.waiters(of: "jobs").map(\.owner) == ["carol", "dave"])

        driver.advance(.seconds(8))
        effects = driver.take()
        #expect(TableDriver.timeouts(effects) == [carol])
        #expect(TableDriver.grants(effects).map(\.waiter) == [dave])
        #expect(TableDriver.grants(effects).first?.token == alice.token + 1)
    }

    @Test func aReleaseSkipsWaitersPastTheirDeadlineEvenBeforeTheTick() throws {
        var driver = TableDriver()
        let alice = try driver.grant("jobs", "alice")
        let (_, bob) = try driver.acquire("jobs", "bob", wait: .seconds(1))
        let (_, carol) = try driver.acquire("jobs", "carol", wait: .seconds(5))
        _ = driver.take()
        driver.clock.advance(.seconds(3))  // bob's wait is over, no tick yet
        try driver.release("jobs", "alice", token: alice.token)
        let effects = driver.take()
        #expect(TableDriver.timeouts(effects) == [bob])
        #expect(TableDriver.grants(effects).map(\.waiter) == [carol])
    }

    @Test func theWaitIsCappedByTheRequestDeadline() throws {
        var driver = TableDriver()
        _ = try driver.grant("jobs", "alice")
        let (_, bob) = try driver.acquire("jobs", "bob", wait: .seconds(60), waitCap: .seconds(3))
        #expect(driver.table.waiters(of: "jobs").first?.deadline == .seconds(3))
        expectRefusal(.deadlineExceeded, containing: "no time left") {
            try driver.acquire("jobs", "carol", wait: .seconds(60), waitCap: .zero)
        }
        driver.advance(.seconds(3))
        #expect(TableDriver.timeouts(driver.take()) == [bob])
        // A free lock is granted even with no time left to wait.
        let (result, _) = try driver.acquire("other", "carol", wait: .seconds(1), waitCap: .zero)
        #expect(result.grantedToken != nil)
    }

    @Test func badInputIsRefusedAsInvalidArgumentAndChangesNothing() throws {
        var driver = TableDriver(limits: LockLimits(maxTTL: .seconds(60), maxWait: .seconds(120), maxNameBytes: 16))
        let cases: [(String, String, Duration, Duration, String)] = [
            ("", "alice", .seconds(1), .zero, "lock name must not be empty"),
            ("jobs", "", .seconds(1), .zero, "owner must not be empty"),
            (String(repeating: "x", count: 17), "alice", .seconds(1), .zero, "17 bytes"),
            ("jobs", String(repeating: "é", count: 9), .seconds(1), .zero, "owner is 18 bytes"),
            ("jo\nbs", "alice", .seconds(1), .zero, "control characters"),
            ("jobs", "alice", .zero, .zero, "ttl must be positive"),
            ("jobs", "alice", .seconds(61), .zero, "exceeds the maximum"),
            ("jobs", "alice", .seconds(1), .seconds(121), "wait"),
        ]
        for (name, owner, ttl, wait, fragment) in cases {
            expectRefusal(.invalidArgument, containing: fragment) { try driver.acquire(name, owner, ttl: ttl, wait: wait) }
        }
        expectRefusal(.invalidArgument) { _ = try driver.renew("", "alice", token: 1) }
        expectRefusal(.invalidArgument) { try driver.release("jobs", "", token: 1) }
        #expect(!driver.table.hasChanges)
        #expect(driver.take().isEmpty)
        #expect(driver.table.activeNames.isEmpty)
        let lease = try driver.grant("jobs", "alice", ttl: .seconds(60))
        expectRefusal(.invalidArgument, containing: "exceeds") { _ = try driver.renew("jobs", "alice", token: lease.token, ttl: .seconds(61)) }
        #expect(driver.table.holder(of: "jobs")?.ttl == .seconds(60))
    }

    @Test func queueLengthIsBounded() throws {
        var driver = TableDriver(limits: LockLimits(maxWaitersPerLock: 2))
        _ = try driver.grant("jobs", "alice")
        try driver.acquire("jobs", "b", wait: .seconds(1))
        try driver.acquire("jobs", "c", wait: .seconds(1))
        expectRefusal(.resourceExhausted) { try driver.acquire("jobs", "d", wait: .seconds(1)) }
    }

    @Test func tokensStrictlyIncreaseOverManyGrantsExpiriesAndReleases() throws {
        var driver = TableDriver()
        var generator = SeededGenerator(seed: 7)
        var last: UInt64 = 0
        var holder: (String, UInt64)?
        for step in 0..<500 {
            switch generator.next() % 3 {
            case 0:
                if let (owner, token) = holder { try driver.release("jobs", owner, token: token) }
            case 1:
                driver.advance(.milliseconds(Int64(generator.next() % 3000)))
            default:
                if let (result, _) = try? driver.acquire("jobs", "owner\(step % 5)", ttl: .seconds(2)), let token = result.grantedToken {
                    #expect(token > last)
                    last = token
                }
            }
            for grant in TableDriver.grants(driver.effects) {
                #expect(grant.token > last)
                last = grant.token
            }
            _ = driver.take()
            holder = driver.table.holder(of: "jobs").map { ($0.owner, $0.token) }
        }
        #expect(driver.table.lastToken(of: "jobs") == last)
    }
}
