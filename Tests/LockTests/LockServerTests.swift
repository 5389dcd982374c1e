import Foundation
import LockService
import RPC
import RingProtocol
import RingstoreClient
import Testing
import TestKit
import ZeroMQ

/// The lock service over real sockets, in process.
@Suite(.timeLimit(.minutes(1)))  // hang guards; no test measures time
struct LockServerTests {
    @Test func acquireRenewReleaseStatusAndListOverRPC() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")

        let grant = try await alice.acquire("jobs", ttl: .seconds(30))
        #expect(grant.token == 1 && grant.owner == "alice" && grant.name == "jobs" && grant.ttl == .seconds(30))
        let wall = Int64(Date().timeIntervalSince1970 * 1_000_000)
        #expect(abs(grant.expiresUnixMicros - (wall + 30_000_000)) < 10_000_000)

        let refused = await outcome { try await bob.acquire("jobs", ttl: .seconds(5)) }
        #expect(refused.failureCode == .failedPrecondition)
        let again = await outcome { try await alice.acquire("jobs", ttl: .seconds(5)) }
        #expect(again.failureCode == .failedPrecondition)
        if case .failure(let error) = again { #expect(error.message.contains("already held by you")) }

        let renewed = try await alice.renew("jobs", token: grant.token, ttl: .seconds(60))
        #expect(renewed.token == grant.token && renewed.ttl == .seconds(60))
        #expect(renewed.expiresUnixMicros > grant.expiresUnixMicros)
        let stolen = await outcome { try await bob.renew("jobs", token: grant.token) }
        #expect(stolen.failureCode == .failedPrecondition)

        let status = try await bob.status("jobs")
        #expect(status.holder != nil && status.holder?.owner == "alice" && status.holder?.token == 1 && status.lastToken == 1)
        #expect(try await bob.list().map(\.name) == ["jobs"])

        try await alice.release("jobs", token: grant.token)
        let free = try await bob.status("jobs")
        #expect(free.holder == nil && free.lastToken == 1)
        #expect(try await bob.list().isEmpty)
        let repeated = await outcome { try await alice.release("jobs", token: grant.token) }
        #expect(repeated.failureCode == .failedPrecondition)
        #expect(try await bob.acquire("jobs", ttl: .seconds(5)).token == 2)
        try await lock.stop()
    }

    @Test func aParkedAcquireIsGrantedTheMomentTheHolderReleases() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")
        let first = try await alice.acquire("jobs", ttl: .seconds(30))
        let waiting = Task { await outcome { try await bob.acquire("jobs", ttl: .seconds(30), wait: .seconds(30)) } }
        try await waitUntil("bob to be queued") { try await alice.status("jobs").waiters.map(\.owner) == ["bob"] }
        try await alice.release("jobs", token: first.token)
        let granted = await waiting.value
        #expect(granted.value?.token == first.token + 1)
        #expect(granted.value?.owner == "bob")
        #expect(try await alice.status("jobs").holder?.owner == "bob")
        try await lock.stop()
    }

    @Test func waitersAreServedInArrivalOrder() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let first = try await alice.acquire("jobs", ttl: .seconds(30))
        let owners = ["w1", "w2", "w3", "w4"]
        var tasks: [Task<Result<LockGrant, RPCError>, Never>] = []
        for (index, owner) in owners.enumerated() {
            let client = try lock.client(owner)
            tasks.append(Task { await outcome { try await client.acquire("jobs", ttl: .seconds(30), wait: .seconds(30)) } })
            try await waitUntil("\(owner) to be queued") { try await alice.status("jobs").waiters.count == index + 1 }
        }
        #expect(try await alice.status("jobs").waiters.map(\.owner) == owners)
        var holder = (client: alice, token: first.token)
        for (index, owner) in owners.enumerated() {
            try await holder.client.release("jobs", token: holder.token)
            let grant = try await tasks[index].value.get()
            #expect(grant.owner == owner)
            #expect(grant.token == holder.token + 1)
            holder = (try lock.client(owner), grant.token)
        }
        try await lock.stop()
    }

    @Test func aWaitThatRunsOutIsAnsweredDeadlineExceeded() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")
        _ = try await alice.acquire("jobs", ttl: .seconds(30))
        let timedOut = await outcome { try await bob.acquire("jobs", ttl: .seconds(5), wait: .milliseconds(200)) }
        #expect(timedOut.failureCode == .deadlineExceeded)
        if case .failure(let error) = timedOut { #expect(error.message.contains("the wait for jobs ran out"), "\(error)") }

        // The request's own deadline bounds the wait: the service answers
        // before the caller gives up, not after.
        let rpc = try lock.rpc()
        let request = WireLockAcquireRequest.with {
            $0.name = "jobs"
            $0.owner = "carol"
            $0.ttlMillis = 5000
            $0.waitMillis = 60_000
        }
        let capped = await outcome { try await rpc.call(LockMethods.acquire, request, options: CallOptions(timeout: .milliseconds(800))) }
        #expect(capped.failureCode == .deadlineExceeded)
        if case .failure(let error) = capped { #expect(error.message.contains("ran out"), "answered by the service: \(error)") }
        #expect(try await alice.status("jobs").waiters.isEmpty)
        rpc.close()
        try await lock.stop()
    }

    @Test func anExpiredLeasePassesToTheWaiterAndTheOldTokenIsRefused() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")
        let first = try await alice.acquire("jobs", ttl: .milliseconds(300))
        let second = try await bob.acquire("jobs", ttl: .seconds(30), wait: .seconds(20))
        #expect(second.token == first.token + 1)
        let late = await outcome { try await alice.renew("jobs", token: first.token) }
        #expect(late.failureCode == .failedPrecondition)
        if case .failure(let error) = late { #expect(error.message.contains("stale"), "\(error)") }
        try await lock.stop()
    }

    @Test func eventsArePublishedForAcquireReleaseExpiryAndLossAlsoToTheOwner() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let log = try EventLog(context: lock.context, endpoint: lock.publish, topics: ["lock", "owner/alice"])
        try await log.waitUntilLive(alice)

        let first = try await alice.acquire("jobs", ttl: .seconds(30))
        try await alice.release("jobs", token: first.token)
        let second = try await alice.acquire("jobs", ttl: .milliseconds(200))
        try await waitUntil("alice's lost notice") { !log.events(topic: "owner/alice").isEmpty }
        try await waitUntil("the lock topic's lost event") {
            log.events(topic: "lock").contains { $0.event.type == "lost" && $0.event.lock.name == "jobs" }
        }

        let jobs = log.events(topic: "lock").filter { $0.event.lock.name == "jobs" }.map(\.event)
        #expect(jobs.map(\.type) == ["acquired", "released", "acquired", "expired", "lost"])
        #expect(jobs.map(\.lock.token) == [first.token, first.token, second.token, second.token, second.token])
        #expect(jobs.allSatisfy { $0.lock.owner == "alice" && $0.timeUnixMicros > 0 && $0.topic == "lock" })
        #expect(jobs[0].lock.expiresUnixMicros == first.expiresUnixMicros)
        #expect(jobs[3].lock.reason.contains("not renewed"))
        // One numbering for the whole topic, no gaps.
        let seqs = log.events(topic: "lock").map(\.event.seq)
        #expect(zip(seqs, seqs.dropFirst()).allSatisfy { $1 == $0 + 1 })

        let notice = try #require(log.events(topic: "owner/alice").first?.event)
        #expect(notice.type == "lost" && notice.lock.name == "jobs" && notice.lock.token == second.token)
        log.close()
        try await lock.stop()
    }

    @Test func theSnapshotAgreesWithTheEventStream() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")
        let log = try EventLog(context: lock.context, endpoint: lock.publish, topics: ["lock"])
        try await log.waitUntilLive(alice)
        let held = try await alice.acquire("held", ttl: .seconds(30))
        let waiting = Task { await outcome { try await bob.acquire("held", ttl: .seconds(30), wait: .seconds(30)) } }
        try await waitUntil("bob to be queued") { try await alice.status("held").waiters.count == 1 }
        let snapshot = try await alice.snapshot()
        try await waitUntil("the acquired event") { log.events.contains { $0.event.lock.name == "held" } }
        let last = try #require(log.events.last?.event)
        #expect(snapshot.incarnation == last.incarnation)
        #expect(snapshot.lastSequence == ["lock": last.seq])
        #expect(snapshot.locks.map(\.name) == ["held"])
        #expect(snapshot.locks.first?.holder?.token == held.token)
        #expect(snapshot.locks.first?.waiters.map(\.owner) == ["bob"])
        try await alice.release("held", token: held.token)
        #expect(await waiting.value.value?.token == held.token + 1)
        log.close()
        try await lock.stop()
    }

    @Test func badInputGetsInvalidArgumentAndTheServiceKeepsServing() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let nobody = try lock.client("")
        let cases: [(String, @Sendable () async throws -> Void)] = [
            ("empty name", { _ = try await alice.acquire("", ttl: .seconds(1)) }),
            ("empty owner", { _ = try await nobody.acquire("jobs", ttl: .seconds(1)) }),
            ("zero ttl", { _ = try await alice.acquire("jobs", ttl: .zero) }),
            ("absurd ttl", { _ = try await alice.acquire("jobs", ttl: .seconds(86_400 * 365)) }),
            ("absurd wait", { _ = try await alice.acquire("jobs", ttl: .seconds(1), wait: .seconds(86_400)) }),
            ("oversized name", { _ = try await alice.acquire(String(repeating: "n", count: 100_000), ttl: .seconds(1)) }),
            ("control character", { _ = try await alice.acquire("a\u{0}b", ttl: .seconds(1)) }),
            ("renew without name", { _ = try await alice.renew("", token: 1) }),
            ("release without owner", { try await nobody.release("jobs", token: 1) }),
            ("status without name", { _ = try await alice.status("") }),
        ]
        for (label, call) in cases {
            let result = await outcome { try await call() }
            #expect(result.failureCode == .invalidArgument, "\(label): \(result)")
        }
        let rpc = try lock.rpc()
        for path in [LockMethods.acquire.path, LockMethods.cancel.path] {
            let garbage = await outcome { try await rpc.callRaw(path: path, idempotent: false, body: [0x0A, 0xFF, 0xFF]) }
            #expect(garbage.failureCode == .invalidArgument, "\(path)")
        }
        let nameless = await outcome { try await rpc.call(LockMethods.cancel, WireLockCancelRequest.with { $0.owner = "alice" }) }
        #expect(nameless.failureCode == .invalidArgument)
        let unknown = await outcome { try await rpc.callRaw(path: "/ringstore.v1.Lock/Explode", idempotent: false, body: []) }
        #expect(unknown.failureCode == .unimplemented)

        let health = try await rpc.call(LockMethods.health, WireHealthRequest())
        #expect(health.status == .serving && health.service == "lock")
        #expect(try await alice.acquire("jobs", ttl: .seconds(1)).token == 1)
        #expect(try await alice.list().map(\.name) == ["jobs"])
        rpc.close()
        try await lock.stop()
    }

    @Test func aGracefulRestartKeepsHoldersAndTokens() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        var last: UInt64 = 0
        for _ in 0..<3 {
            let grant = try await alice.acquire("cycled", ttl: .seconds(30))
            try await alice.release("cycled", token: grant.token)
            last = grant.token
        }
        let held = try await alice.acquire("held", ttl: .seconds(30))
        try await lock.stop()
        try await lock.start()

        let bob = try lock.client("bob")
        let status = try await bob.status("held")
        #expect(status.holder?.owner == "alice" && status.holder?.token == held.token)
        let refused = await outcome { try await bob.acquire("held", ttl: .seconds(5)) }
        #expect(refused.failureCode == .failedPrecondition)
        #expect(try await alice.renew("held", token: held.token).token == held.token)
        // Tokens come from one counter: after "held" took one, "cycled" gets a higher one still.
        #expect(try await bob.acquire("cycled", ttl: .seconds(5)).token == held.token + 1)
        #expect(held.token > last)
        try await lock.stop()
    }

    @Test func aSecondServiceOnTheSameDataDirectoryRefusesToStart() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        #expect(throws: LockStoreError.self) { _ = try LockStore(directory: lock.directory) }
        try await lock.stop()
        let reopened = try LockStore(directory: lock.directory)
        reopened.close()
    }

    // MARK: Waiters that give up or vanish

    @Test func aWaiterWhoseTaskIsCancelledLeavesTheQueueAndIsNeverGranted() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")
        let carol = try lock.client("carol")
        let first = try await alice.acquire("jobs", ttl: .seconds(30))
        let giveUp = Task { await outcome { try await bob.acquire("jobs", ttl: .seconds(30), wait: .seconds(60)) } }
        try await waitUntil("bob to be queued") { try await alice.status("jobs").waiters.map(\.owner) == ["bob"] }
        giveUp.cancel()
        let result = await giveUp.value
        #expect(result.failureCode == .cancelled)
        if case .failure(let error) = result { #expect(error.message.contains("left the queue"), "\(error)") }
        // bob's connection is still open: only its cancel can have taken it out.
        #expect(try await alice.status("jobs").waiters.isEmpty)

        let waiting = Task { await outcome { try await carol.acquire("jobs", ttl: .seconds(30), wait: .seconds(60)) } }
        try await waitUntil("carol to be queued") { try await alice.status("jobs").waiters.map(\.owner) == ["carol"] }
        try await alice.release("jobs", token: first.token)
        #expect(await waiting.value.value?.owner == "carol")
        #expect(try await bob.status("jobs").holder?.owner == "carol")
        try await lock.stop()
    }

    @Test func aWaiterWhoseOwnDeadlinePassedUnansweredLeavesTheQueue() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob", timeout: .milliseconds(300))
        _ = try await alice.acquire("jobs", ttl: .seconds(60))
        _ = try await bob.status("jobs")  // bob's connection is up
        // The service stalls before it reads bob's acquire, so it counts bob's
        // wait from when it reads it: long after bob gave up.
        let gate = Gate()
        lock.withServer { _ in gate.block() }
        try await waitUntil("the service to stall") { gate.isBlocking }
        let result = await outcome { try await bob.acquire("jobs", ttl: .seconds(30), wait: .seconds(2)) }
        gate.open()
        #expect(result.failureCode == .deadlineExceeded, "\(result)")
        // Asked on bob's connection, so answered after its acquire and whatever followed it.
        let status = try await bob.status("jobs")
        #expect(status.waiters.isEmpty, "bob's wait outlived bob: \(status.waiters.map(\.owner))")
        try await lock.stop()
    }

    @Test func aWaiterWhoseConnectionClosedIsDroppedEvenWhenItsDescriptorIsReused() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let first = try await alice.acquire("jobs", ttl: .seconds(30))
        for round in 0..<5 {
            // bob queues and vanishes without a word; carol connects next
            // (most likely on the descriptor bob's connection had) and queues.
            let bob = try lock.client("bob-\(round)")
            let lost = Task { await outcome { try await bob.acquire("jobs", ttl: .seconds(30), wait: .seconds(60)) } }
            try await waitUntil("bob to be queued") { try await alice.status("jobs").waiters.map(\.owner) == ["bob-\(round)"] }
            bob.close()
            #expect(await lost.value.failureCode == .unavailable)
            let carol = try lock.client("carol-\(round)")
            let waiting = Task { await outcome { try await carol.acquire("jobs", ttl: .seconds(30), wait: .seconds(60)) } }
            try await waitUntil("bob to leave and carol to queue") {
                try await alice.status("jobs").waiters.map(\.owner) == ["carol-\(round)"]
            }
            waiting.cancel()
            _ = await waiting.value
            carol.close()
        }
        try await waitUntil("the queue to be empty") { try await alice.status("jobs").waiters.isEmpty }
        try await alice.release("jobs", token: first.token)
        #expect(try await alice.status("jobs").holder == nil)
        try await lock.stop()
    }

    @Test func cancelOverRPCReleasesAGrantItsClientNeverSawAndARepeatDoesNothing() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let rpc = try lock.rpc()
        let watcher = try lock.client("watcher")
        let acquire = WireLockAcquireRequest.with {
            $0.name = "jobs"
            $0.owner = "forgetful"
            $0.ttlMillis = 60_000
            $0.attempt = 42
        }
        let grant = try await rpc.call(LockMethods.acquire, acquire).grant
        #expect(try await watcher.status("jobs").holder?.owner == "forgetful")
        // As if the reply had been lost: the client says it gave up on attempt 42.
        let cancel = WireLockCancelRequest.with {
            $0.name = "jobs"
            $0.owner = "forgetful"
            $0.attempt = 42
        }
        let reply = try await rpc.call(LockMethods.cancel, cancel)
        #expect(reply.releasedToken == grant.token && !reply.dequeued)
        #expect(try await watcher.status("jobs").holder == nil)
        let again = try await rpc.call(LockMethods.cancel, cancel)
        #expect(again.releasedToken == 0 && !again.dequeued)
        let bad = await outcome { try await rpc.call(LockMethods.cancel, WireLockCancelRequest.with { $0.name = "jobs" }) }
        #expect(bad.failureCode == .invalidArgument)
        rpc.close()
        try await lock.stop()
    }

    @Test func aGrantDecidedInTheTurnThatLearnsItsWaiterIsGoneIsTakenBackAndPassedOn() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let port = try #require(lock.listen.split(separator: ":").last.flatMap { UInt16($0) })
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")
        let carol = try lock.client("carol")
        let held = try await alice.acquire("jobs", ttl: .seconds(60))
        let lost = Task { await outcome { try await bob.acquire("jobs", ttl: .seconds(60), wait: .seconds(60)) } }
        try await waitUntil("bob to be queued") { try await alice.status("jobs").waiters.map(\.owner) == ["bob"] }
        let waiting = Task { await outcome { try await carol.acquire("jobs", ttl: .seconds(60), wait: .seconds(60)) } }
        try await waitUntil("carol to be queued") { try await alice.status("jobs").waiters.map(\.owner) == ["bob", "carol"] }
        let open = TCPTable.openConnections(localPort: port)

        // With the service stalled, alice's release arrives and bob's connection
        // closes; the service learns both in the same turn.
        let gate = Gate()
        lock.withServer { _ in gate.block() }
        try await waitUntil("the service to stall") { gate.isBlocking }
        let release = Task { await outcome { try await alice.release("jobs", token: held.token) } }
        bob.close()
        try await waitUntil("the service's side of bob's connection to close") {
            TCPTable.openConnections(localPort: port) == open - 1
        }
        gate.open()
        #expect(await release.value.failureCode == nil)
        #expect(await lost.value.failureCode == .unavailable)
        try await waitUntil("carol to hold the lock, not bob who is gone") {
            try await alice.status("jobs").holder?.owner == "carol"
        }
        let granted = await waiting.value
        #expect(granted.value?.owner == "carol", "\(granted)")
        try await lock.stop()
    }
}
