import Foundation
import LockService
import RPC
import RingProtocol
import RingstoreClient
import Testing
import TestKit

/// The lock client across a change of the lock service's leader: the old one
/// stops, another replica takes over with its state (here: the same data
/// directory on other ports), and the client, which knows both replicas,
/// carries on.
@Suite(.timeLimit(.minutes(1)))  // hang guards; no test measures time
struct LockLeaderChangeTests {
    @Test func aKeptLeaseIsRenewedThroughALeaderChange() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let next = (listen: FreePort.endpoint(), publish: FreePort.endpoint())
        let alice = try LockClient(context: ClientContext(lock.context), endpoints: [lock.listen, next.listen], owner: "alice")
        let keeper = try await alice.hold("jobs", ttl: .seconds(4), renewEvery: .milliseconds(150))
        let watcher = LeaseKeeperTests.Watcher(keeper)
        try await waitUntil("two renewals from the first leader") { watcher.renewals.count >= 2 }
        try await lock.stop()
        try await lock.start(listen: next.listen, publish: next.publish)
        let before = watcher.renewals.count
        try await waitUntil("three renewals from the new leader") { watcher.renewals.count >= before + 3 }
        #expect(keeper.isHeld && keeper.lostReason == nil)
        #expect(alice.endpoint == next.listen)
        let status = try await alice.status("jobs")
        #expect(status.holder?.owner == "alice" && status.holder?.token == keeper.token)
        try await keeper.release()
        try await lock.stop()
    }

    @Test func aWaitingAcquireIsSentAgainToTheNewLeaderAndGranted() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let next = (listen: FreePort.endpoint(), publish: FreePort.endpoint())
        let endpoints = [lock.listen, next.listen]
        let alice = try LockClient(context: ClientContext(lock.context), endpoints: endpoints, owner: "alice")
        let bob = try LockClient(context: ClientContext(lock.context), endpoints: endpoints, owner: "bob")
        let held = try await alice.acquire("jobs", ttl: .seconds(30))
        let waiting = Task { await outcome { try await bob.acquire("jobs", ttl: .seconds(5), wait: .seconds(20)) } }
        try await waitUntil("bob to wait on the first leader") { try await alice.status("jobs").waiters.count == 1 }
        try await lock.stop()
        try await lock.start(listen: next.listen, publish: next.publish)
        // The new leader knows alice's lease (durable) but not bob's wait: his
        // client sends the same acquire again, and he waits there.
        try await waitUntil("bob to wait on the new leader") { try await alice.status("jobs").waiters.count == 1 }
        try await alice.release("jobs", token: held.token)
        let grant = try await waiting.value.get()
        #expect(grant.owner == "bob" && grant.token == held.token + 1)
        try await bob.release("jobs", token: grant.token)
        try await lock.stop()
    }

    @Test func aWatchTakesAFreshSnapshotFromTheNewLeaderAndFollowsItsEvents() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let next = (listen: FreePort.endpoint(), publish: FreePort.endpoint())
        let context = ClientContext(lock.context)
        var endpoints = ClusterEndpoints(placement: FreePort.endpoint(), locks: "\(lock.listen),\(next.listen)")
        endpoints.lockEvents = [lock.publish, next.publish]
        let watch = try ClusterWatch(context: context, endpoints: endpoints, topics: ["lock"], caller: "test",
                                     callTimeout: .milliseconds(300))
        let items = Box<[ClusterWatch.Item]>([])
        let reader = Task { for await item in watch.items { items.update { $0.append(item) } } }
        let client = try LockClient(context: context, endpoints: endpoints, owner: "alice")
        func lockSnapshots() -> [(LockSnapshot, Bool)] {
            items.current.compactMap { if case .lockSnapshot(let snapshot, let initial) = $0 { (snapshot, initial) } else { nil } }
        }
        func events(of name: String) -> [ClusterEvent] {
            items.current.compactMap {
                if case .event(let event) = $0, case .lock(let change)? = event.details, change.name == name { event } else { nil }
            }
        }
        /// Acquires and releases `name` until the watch shows its events (PUB drops what it sends before a subscription is live).
        func probe(_ name: String) async throws {
            try await waitUntil("the watch to show \(name)'s events", timeout: .seconds(20), interval: .milliseconds(50)) {
                if !events(of: name).isEmpty { return true }
                let grant = try await client.acquire(name, ttl: .seconds(5))
                try await client.release(name, token: grant.token)
                return false
            }
        }
        try await waitUntil("the first snapshot") { lockSnapshots().contains { $0.1 } }
        let first = try #require(lockSnapshots().first).0.incarnation
        try await probe("before")

        try await lock.stop()
        try await lock.start(listen: next.listen, publish: next.publish)
        try await waitUntil("a fresh snapshot of the new leader", timeout: .seconds(20)) {
            lockSnapshots().contains { !$0.1 && $0.0.incarnation != first }
        }
        let second = try #require(lockSnapshots().last).0.incarnation
        try await probe("after")
        #expect(events(of: "after").allSatisfy { $0.incarnation == second })
        #expect(events(of: "before").allSatisfy { $0.incarnation == first })
        // Every event shown after the fresh snapshot is of the new leader.
        let afterSnapshot = items.current.drop { item in
            if case .lockSnapshot(let snapshot, false) = item { return snapshot.incarnation != second }
            return true
        }
        #expect(afterSnapshot.allSatisfy { if case .event(let event) = $0 { event.incarnation == second } else { true } })
        watch.close()
        reader.cancel()
        client.close()
        try await lock.stop()
    }
}
