@testable import LockService
import RingProtocol
import Testing
import TestKit

/// The table plus the effects it produced, for terse tests.
struct TableDriver {
    var table: LockTable
    var clock = ManualClock()
    var effects: [LockEffect] = []
    var nextWaiter: UInt64 = 0

    init(limits: LockLimits = LockLimits(), forgetAfter: Duration = .seconds(3600)) {
        table = LockTable(limits: limits, forgetAfter: forgetAfter)
    }

    /// Acquire; returns the result and the waiter id used.
    @discardableResult
    mutating func acquire(_ name: String, _ owner: String, ttl: Duration = .seconds(10), wait: Duration = .zero,
                          waitCap: Duration? = nil, attempt: UInt64 = 0) throws(LockError) -> (AcquireResult, UInt64) {
        nextWaiter += 1
        let result = try table.acquire(name: name, owner: owner, ttl: ttl, wait: wait, waitCap: waitCap, attempt: attempt,
                                       waiter: nextWaiter, now: clock.now, effects: &effects)
        return (result, nextWaiter)
    }

    mutating func grant(_ name: String, _ owner: String, ttl: Duration = .seconds(10)) throws -> LockLease {
        let (result, _) = try acquire(name, owner, ttl: ttl)
        guard case .granted(let lease) = result else { throw TestFailure("\(name) was not granted to \(owner): \(result)") }
        return lease
    }

    mutating func renew(_ name: String, _ owner: String, token: UInt64, ttl: Duration? = nil) throws(LockError) -> LockLease {
        try table.renew(name: name, owner: owner, token: token, ttl: ttl, now: clock.now, effects: &effects)
    }

    mutating func release(_ name: String, _ owner: String, token: UInt64) throws(LockError) {
        try table.release(name: name, owner: owner, token: token, now: clock.now, effects: &effects)
    }

    mutating func cancel(_ name: String, _ owner: String, attempt: UInt64) throws(LockError) -> CancelOutcome {
        try table.cancel(name: name, owner: owner, attempt: attempt, now: clock.now, effects: &effects)
    }

    @discardableResult
    mutating func withdraw(_ waiter: UInt64) -> String? {
        table.withdraw(waiter: waiter, now: clock.now, effects: &effects)
    }

    @discardableResult
    mutating func revoke(_ name: String, token: UInt64) -> Bool {
        table.revoke(name: name, token: token, reason: "the client is gone", now: clock.now, effects: &effects)
    }

    mutating func advance(_ duration: Duration) {
        clock.advance(duration)
        table.tick(now: clock.now, effects: &effects)
    }

    /// The effects so far, cleared.
    mutating func take() -> [LockEffect] {
        defer { effects.removeAll() }
        return effects
    }

    /// Waiter grants among `effects`: waiter id → (owner, token).
    static func grants(_ effects: [LockEffect]) -> [(waiter: UInt64, owner: String, token: UInt64)] {
        effects.compactMap {
            if case .granted(let waiter, let lease) = $0 { return (waiter, lease.owner, lease.token) }
            return nil
        }
    }

    static func timeouts(_ effects: [LockEffect]) -> [UInt64] {
        effects.compactMap {
            if case .waitExpired(let waiter, _, _) = $0 { return waiter }
            return nil
        }
    }

    static func events(_ effects: [LockEffect]) -> [LockEvent] {
        effects.compactMap {
            if case .event(let event) = $0 { return event }
            return nil
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `#expect(throws:)` with the kind of a `LockError` and a piece of its message.
func expectRefusal(_ kind: LockError.Kind, containing fragment: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                   _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected \(kind), but it succeeded", sourceLocation: sourceLocation)
    } catch {
        guard let error = error as? LockError else {
            Issue.record("expected a LockError, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.kind == kind, "\(error.message)", sourceLocation: sourceLocation)
        #expect(fragment.isEmpty || error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", sourceLocation: sourceLocation)
    }
}

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
}

extension AcquireResult {
    var grantedToken: UInt64? {
        if case .granted(let lease) = self { return lease.token }
        return nil
    }
}

