@testable import StorageNode
import Testing

/// Which anti-entropy pass runs next.
@Suite struct RepairSchedulerTests {
    @Test func passesRunOneAtATimeInTheOrderAsked() throws {
        var scheduler = RepairScheduler<Int>()
        scheduler.enqueue(.requested, waiter: 1)
        scheduler.enqueue(.catchUp)
        let started = scheduler.startNext()
        let first = try #require(started)
        #expect(first.reason == .requested && first.waiters == [1])
        #expect(scheduler.running == .requested)
        // Nothing starts while one runs.
        #expect(scheduler.startNext() == nil)
        scheduler.finished()
        #expect(scheduler.startNext()?.reason == .catchUp)
        scheduler.finished()
        #expect(scheduler.startNext() == nil && scheduler.running == nil)
    }

    @Test func aRequestJoinsAWaitingPassOfItsKindButNotARunningOne() throws {
        var scheduler = RepairScheduler<Int>()
        scheduler.enqueue(.requested, waiter: 1)
        scheduler.enqueue(.catchUp)
        scheduler.enqueue(.requested, waiter: 2)
        scheduler.enqueue(.catchUp)
        #expect(scheduler.queue.map(\.reason) == [.requested, .catchUp])
        #expect(scheduler.queue.map(\.waiters) == [[1, 2], []])
        _ = scheduler.startNext()
        // The requested pass runs: a new request waits for a pass of its own.
        scheduler.enqueue(.requested, waiter: 3)
        #expect(scheduler.queue.map(\.reason) == [.catchUp, .requested])
        #expect(scheduler.queue.last?.waiters == [3])
    }

    @Test func aPeriodicPassIsQueuedOnlyWhenCaughtUpAndIdle() {
        var scheduler = RepairScheduler<Int>()
        #expect(scheduler.queuePeriodic(caughtUp: false) == false)
        #expect(scheduler.queue.isEmpty)
        #expect(scheduler.queuePeriodic(caughtUp: true) == true)
        // One waits: no second one.
        #expect(scheduler.queuePeriodic(caughtUp: true) == false)
        #expect(scheduler.startNext()?.reason == .periodic)
        // One runs: none either.
        #expect(scheduler.queuePeriodic(caughtUp: true) == false)
        scheduler.finished()
        #expect(scheduler.queuePeriodic(caughtUp: true) == true)
        // Periodic passes are never joined together when asked for directly.
        scheduler.enqueue(.periodic)
        #expect(scheduler.queue.map(\.reason) == [.periodic, .periodic])
    }
}
