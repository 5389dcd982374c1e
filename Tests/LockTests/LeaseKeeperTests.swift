import Foundation
import LockService
import RPC
import RingProtocol
import RingstoreClient
import Testing
import TestKit

/// The client library's lease keeper against an in-process lock service.
@Suite(.timeLimit(.minutes(1)))  // hang guards; no test measures time
struct LeaseKeeperTests {
    /// Counts a keeper's renewals and remembers its last change.
    final class Watcher: Sendable {
        let renewals = Tally()
        let last = Box<LeaseChange?>(nil)
        let task: Task<Void, Never>

        init(_ keeper: LeaseKeeper) {
            let renewals = renewals
            let last = last
            task = Task {
                for await change in keeper.changes {
                    if case .renewed = change { renewals.bump() }
                    last.set(change)
                }
            }
        }
    }

    @Test func aKeptLeaseOutlivesManyTtlsAndIsReleasedForTheNextOwner() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")
        let keeper = try await alice.hold("jobs", ttl: .milliseconds(600))
        let watcher = Watcher(keeper)
        // Twelve renewals at a third of the ttl: four ttls, and still held.
        try await waitUntil("twelve renewals") { watcher.renewals.count >= 12 }
        #expect(keeper.isHeld)
        #expect(keeper.lostReason == nil)
        let status = try await bob.status("jobs")
        #expect(status.holder?.owner == "alice" && status.holder?.token == keeper.token)
        let refused = await outcome { try await bob.acquire("jobs", ttl: .seconds(1)) }
        #expect(refused.failureCode == .failedPrecondition)

        try await keeper.release()
        try await waitUntil("the released change") { watcher.last.current == .released }
        #expect(!keeper.isHeld)
        #expect(try await bob.acquire("jobs", ttl: .seconds(1)).token == keeper.token + 1)
        try await lock.stop()
    }

    @Test func losingTheServiceReportsTheLossWhenTheLeaseRunsOut() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice", timeout: .milliseconds(200))
        let lost = Box<String?>(nil)
        let keeper = try await alice.hold("jobs", ttl: .milliseconds(600)) { reason in lost.set(reason) }
        let watcher = Watcher(keeper)
        try await waitUntil("a renewal") { watcher.renewals.count >= 1 }
        try await lock.stop()
        try await waitUntil("the lost notice", timeout: .seconds(5)) { lost.current != nil }
        #expect(lost.current?.contains("ran out") == true, "\(lost.current ?? "")")
        #expect(!keeper.isHeld)
        #expect(keeper.remaining == nil)
        try await waitUntil("the lost change") {
            if case .lost = watcher.last.current { return true }
            return false
        }
        let release = await outcome { try await keeper.release() }
        #expect(release.failureCode == .failedPrecondition)
    }

    @Test func aRefusedRenewalReportsTheLossAtOnce() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let lost = Box<String?>(nil)
        let keeper = try await alice.hold("jobs", ttl: .seconds(30), renewEvery: .milliseconds(50)) { reason in lost.set(reason) }
        // Another process of the same owner (an operator with ringctl) releases it.
        let operatorClient = try lock.client("alice")
        try await operatorClient.release("jobs", token: keeper.token)
        try await waitUntil("the lost notice") { lost.current != nil }
        #expect(lost.current?.contains("renewal refused") == true, "\(lost.current ?? "")")
        #expect(!keeper.isHeld)
        try await lock.stop()
    }

    @Test func holdWaitsInTheQueueAndKeepsTheLeaseOnceGranted() async throws {
        let lock = try InProcessLock()
        try await lock.start()
        let alice = try lock.client("alice")
        let bob = try lock.client("bob")
        let first = try await alice.acquire("jobs", ttl: .seconds(30))
        let waiting = Task { await outcome { try await bob.hold("jobs", ttl: .milliseconds(400), wait: .seconds(20)) } }
        try await waitUntil("bob to be queued") { try await alice.status("jobs").waiters.count == 1 }
        try await alice.release("jobs", token: first.token)
        let keeper = try await waiting.value.get()
        #expect(keeper.token == first.token + 1)
        let watcher = Watcher(keeper)
        try await waitUntil("three renewals") { watcher.renewals.count >= 3 }
        #expect(keeper.isHeld)
        keeper.stop()
        try await lock.stop()
    }
}
