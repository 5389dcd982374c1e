@testable import LockService
import Testing
import TestKit

/// What the table does for a replicated lock service (etcd store): a retry
/// of the same acquire after a leader change, and queues kept across it.
@Suite struct LockTableReplicaTests {
    @Test func theSameAcquireSentAgainGetsItsGrantBackAndADifferentAttemptIsStillRefused() throws {
        var driver = TableDriver()
        let (first, _) = try driver.acquire("job", "alice", attempt: 7)
        guard case .granted(let lease) = first else { throw TestFailure("not granted: \(first)") }
        let (again, _) = try driver.acquire("job", "alice", attempt: 7)
        #expect(again == .granted(lease))
        #expect(driver.table.lastToken == lease.token)
        #expect(throws: LockError.self) { try driver.acquire("job", "alice", attempt: 8) }
        #expect(throws: LockError.self) { try driver.acquire("job", "alice") }
    }

    @Test func aQueuedAcquireSentAgainTakesItsOwnPlaceBackAndTheEarlierRequestIsSuperseded() throws {
        var driver = TableDriver()
        let holder = try driver.grant("job", "holder")
        let (_, alice) = try driver.acquire("job", "alice", wait: .seconds(30), attempt: 1)
        _ = try driver.acquire("job", "bob", wait: .seconds(30), attempt: 2)
        _ = driver.take()
        let (retry, newAlice) = try driver.acquire("job", "alice", wait: .seconds(30), attempt: 1)
        #expect(retry == .queued(position: 1))
        #expect(driver.take() == [.superseded(waiter: alice)])
        try driver.release("job", "holder", token: holder.token)
        let grants = TableDriver.grants(driver.take())
        #expect(grants.map(\.waiter) == [newAlice])
        #expect(grants.map(\.owner) == ["alice"])
    }

    @Test func queuesAndTheGrantedAttemptAreDurableOnlyWhenTheStoreKeepsThem() throws {
        var embedded = TableDriver()
        _ = try embedded.grant("job", "holder")
        _ = embedded.table.takeChanges()
        _ = try embedded.acquire("job", "alice", wait: .seconds(30), attempt: 1)
        #expect(!embedded.table.hasChanges)

        var replicated = TableDriver()
        replicated.table.persistsWaiters = true
        _ = try replicated.acquire("job", "holder", attempt: 9)
        _ = replicated.table.takeChanges()
        _ = try replicated.acquire("job", "alice", wait: .seconds(30), attempt: 1)
        let changes = replicated.table.takeChanges()
        #expect(changes.records.map(\.name) == ["job"])
        #expect(changes.records.first?.holder?.attempt == 9)
        #expect(changes.records.first?.waiters.map(\.owner) == ["alice"])
    }

    @Test func aNewLeaderKeepsTheQueueOrderAndAGrantWaitsForItsDetachedWaiter() throws {
        // The old leader's table: holder, then alice and bob queued.
        var old = TableDriver()
        old.table.persistsWaiters = true
        let holder = try old.grant("job", "holder")
        _ = try old.acquire("job", "alice", wait: .seconds(30), attempt: 1)
        _ = try old.acquire("job", "bob", wait: .seconds(30), attempt: 2)
        let records = old.table.takeChanges().records

        // The new leader restores it; bob comes back first, alice later.
        var new = TableDriver()
        new.clock = old.clock
        new.table = LockTable(restoring: records, lastToken: holder.token, now: new.clock.now)
        new.table.persistsWaiters = true
        #expect(new.table.info("job").waiters.map(\.owner) == ["alice", "bob"])
        let (bobBack, bob) = try new.acquire("job", "bob", wait: .seconds(30), attempt: 2)
        #expect(bobBack == .queued(position: 2))
        #expect(new.take().isEmpty)

        // The holder (renewing through the new leader) releases: alice, still
        // detached, is granted first, and her retry gets that grant.
        try new.release("job", "holder", token: holder.token)
        let grants = TableDriver.grants(new.take())
        #expect(grants.map(\.owner) == ["alice"])
        #expect(grants.first.map { $0.waiter >= LockTable.restoredWaiterBase } == true)
        let (aliceBack, _) = try new.acquire("job", "alice", wait: .seconds(30), attempt: 1)
        guard case .granted(let lease) = aliceBack else { throw TestFailure("alice's retry was not granted: \(aliceBack)") }
        #expect(lease.token > holder.token)
        try new.release("job", "alice", token: lease.token)
        #expect(TableDriver.grants(new.take()).map(\.waiter) == [bob])
    }
}
