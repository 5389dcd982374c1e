import Foundation
import LockService
import RPC
import RingProtocol
import RingstoreClient
import Testing
import TestKit
import ZeroMQ

/// The real `ringstore-lock` executable (and `ringctl lock`), killed and restarted.
@Suite(.serialized, .timeLimit(.minutes(2)))  // hang guards; no test measures time
struct LockProcessTests {
    /// One lock service process on free ports with a data directory that
    /// survives its restarts, with CURVE (the keys of `ClusterKeys`, kept
    /// beside the data). Leases are bound to the key that acquired them.
    final class LockProcess: @unchecked Sendable {
        let listen = FreePort.endpoint()
        let publish = FreePort.endpoint()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-lockproc-\(UUID().uuidString)")
        var directory: URL { root.appendingPathComponent("data") }
        let keys: ClusterKeys
        let context: ZMQContext
        private(set) var process: ServiceProcess?

        init() throws {
            keys = try ClusterKeys(directory: root.appendingPathComponent("keys"), nodes: 0)
            context = try ZMQContext()
        }

        deinit {
            try? FileManager.default.removeItem(at: root)
        }

        /// Extra arguments for every start (e.g. `--forget-after`).
        var extraArguments: [String] = []

        func start() async throws {
            process = try ServiceProcess("ringstore-lock", ["--listen", listen, "--publish", publish,
                                                            "--data-dir", directory.path, "--max-ttl", "120"]
                                                           + keys.serverArguments + extraArguments)
            let rpc = try RPCClient(context: context, endpoint: listen, caller: "lock-process-tests", security: keys.adminSecurity)
            defer { rpc.close() }
            try await waitUntil("ringstore-lock to answer Health", timeout: .seconds(20)) {
                (try? await rpc.call(LockMethods.health, WireHealthRequest(), options: CallOptions(timeout: .milliseconds(300)))) != nil
            }
        }

        @discardableResult
        func stop(signal: Int32) async throws -> Int32 {
            defer { process = nil }
            return try await process?.stop(signal: signal) ?? 0
        }

        /// A client library session as `key` (`client`, `other-client` or `admin`).
        func client(_ owner: String, as key: String = "client") throws -> LockClient {
            try LockClient(context: ClientContext(context, credentials: keys.credentials(as: key)), endpoint: listen, owner: owner,
                           callTimeout: .seconds(5))
        }

        /// ringctl's options for this service, as `client`: the same key as
        /// the test's clients by default, one application's sessions.
        var ringctl: [String] { ringctl(as: "client") }

        func ringctl(as key: String) -> [String] { ["--locks", listen, "--lock-events", publish] + keys.ringctl(as: key) }
    }

    @Test func killDashNineMidLeaseNeitherHandsTheLockOnEarlyNorReusesATokenAfterTheRestart() async throws {
        let service = try LockProcess()
        try await service.start()
        let before = try service.client("alice")
        var last: UInt64 = 0
        for _ in 0..<3 {
            let grant = try await before.acquire("cycled", ttl: .seconds(30))
            try await before.release("cycled", token: grant.token)
            last = grant.token
        }
        let lease = try await before.acquire("jobs", ttl: .seconds(4))

        #expect(try await service.stop(signal: SIGKILL) != 0)
        try await service.start()
        let alice = try service.client("alice")
        let bob = try service.client("bob", as: "other-client")

        // Right after the restart alice's lease could still be live: bob must not get it.
        let early = await outcome { try await bob.acquire("jobs", ttl: .seconds(30)) }
        #expect(early.failureCode == .failedPrecondition)
        if case .failure(let error) = early { #expect(error.message.contains("held by alice"), "\(error)") }
        let status = try await bob.status("jobs")
        #expect(status.holder?.owner == "alice" && status.holder?.token == lease.token)

        // alice stops renewing; bob waits and gets it once the restored lease ran out, with a newer token.
        let grant = try await bob.acquire("jobs", ttl: .seconds(30), wait: .seconds(30))
        #expect(grant.token > lease.token)
        let stale = await outcome { try await alice.renew("jobs", token: lease.token) }
        #expect(stale.failureCode == .failedPrecondition)
        // One counter for all names: "cycled" continues above every token issued, "jobs" included.
        let cycled = try await bob.acquire("cycled", ttl: .seconds(5))
        #expect(cycled.token == grant.token + 1 && cycled.token > last)

        // And once more, killed right after a grant: its token is durable.
        #expect(try await service.stop(signal: SIGKILL) != 0)
        try await service.start()
        let carol = try service.client("carol")
        #expect(try await carol.status("jobs").holder?.token == grant.token)
        #expect(try await carol.status("cycled").lastToken == cycled.token)
        #expect(try await service.stop(signal: SIGTERM) == 0)
    }

    @Test func ringctlLockCommandsAcquireRenewReleaseStatusAndList() async throws {
        let service = try LockProcess()
        try await service.start()
        let acquire = try await ToolRun.run("ringctl", ["lock", "acquire", "jobs", "--ttl", "30", "--owner", "op"] + service.ringctl)
        #expect(acquire.status == 0, "\(acquire.stderr)")
        let token = try #require(UInt64(acquire.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))

        let busy = try await ToolRun.run("ringctl", ["lock", "acquire", "jobs", "--ttl", "30", "--owner", "other"] + service.ringctl)
        #expect(busy.status != 0)
        #expect(busy.stderr.contains("FAILED_PRECONDITION") && busy.stderr.contains("held by op"), "\(busy.stderr)")
        #expect(busy.stdout.isEmpty)

        let renew = try await ToolRun.run("ringctl", ["lock", "renew", "jobs", "--token", "\(token)", "--ttl", "60", "--owner", "op", "--json"] + service.ringctl)
        #expect(renew.status == 0, "\(renew.stderr)")
        let renewed = try #require(try JSONSerialization.jsonObject(with: Data(renew.stdout.utf8)) as? [String: Any])
        #expect(renewed["token"] as? Int == Int(token) && renewed["ttl_ms"] as? Int == 60_000)

        let status = try await ToolRun.run("ringctl", ["lock", "status", "jobs", "--json"] + service.ringctl)
        #expect(status.status == 0, "\(status.stderr)")
        let info = try #require(try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        #expect(info["owner"] as? String == "op" && info["token"] as? Int == Int(token) && info["held"] as? Bool == true)

        let list = try await ToolRun.run("ringctl", ["lock", "list"] + service.ringctl)
        #expect(list.status == 0 && list.stdout.contains("jobs") && list.stdout.contains("op"), "\(list.stdout)\(list.stderr)")

        let wrong = try await ToolRun.run("ringctl", ["lock", "release", "jobs", "--token", "\(token)", "--owner", "other"] + service.ringctl)
        #expect(wrong.status != 0 && wrong.stderr.contains("FAILED_PRECONDITION"))
        let release = try await ToolRun.run("ringctl", ["lock", "release", "jobs", "--token", "\(token)", "--owner", "op"] + service.ringctl)
        #expect(release.status == 0, "\(release.stderr)")
        let free = try await ToolRun.run("ringctl", ["lock", "status", "jobs"] + service.ringctl)
        #expect(free.status == 0 && free.stdout.contains("free"), "\(free.stdout)")

        let bad = try await ToolRun.run("ringctl", ["lock", "acquire", "jobs", "--ttl", "0"] + service.ringctl)
        #expect(bad.status != 0)
        try await service.stop(signal: SIGTERM)
    }

    @Test func ringctlWatchShowsTheLockSnapshotThenLockEvents() async throws {
        let service = try LockProcess()
        try await service.start()
        let alice = try service.client("alice")
        let held = try await alice.acquire("held", ttl: .seconds(60))
        // No placement here: watch still follows the lock service on its own.
        let watch = try ServiceProcess("ringctl", ["watch", "--topic", "lock", "--count", "3", "--timeout", "0.3",
                                                   "--placement", FreePort.endpoint()] + service.ringctl)
        try await waitUntil("the snapshot line") { watch.log.contains("snapshot_lock") }
        #expect(watch.log.contains("lock snapshot_lock seq=1 name=held owner=alice token=\(held.token)"), "\(watch.log)")
        let grant = try await alice.acquire("jobs", ttl: .seconds(30))
        try await alice.release("jobs", token: grant.token)
        try await alice.release("held", token: held.token)
        do {
            #expect(try await watch.waitForExit(timeout: .seconds(20)) == 0)
        } catch {
            Issue.record("watch did not exit: \(watch.log)")
            throw error
        }
        let lines = watch.log.split(separator: "\n").filter { $0.contains(" lock ") && !$0.contains("snapshot_lock") }
        #expect(lines.count == 3, "\(watch.log)")
        #expect(lines.first?.contains("lock acquired seq=2 name=jobs owner=alice token=\(grant.token)") == true, "\(watch.log)")
        #expect(grant.token == held.token + 1, "one token counter for all locks")
        #expect(lines.dropFirst().first?.contains("lock released seq=3 name=jobs") == true, "\(watch.log)")
        #expect(lines.last?.contains("lock released seq=4 name=held") == true, "\(watch.log)")
        try await service.stop(signal: SIGTERM)
    }

    @Test func ringctlHoldKeepsTheLeaseUntilInterruptedThenReleases() async throws {
        let service = try LockProcess()
        try await service.start()
        let holder = try ServiceProcess(
            "ringctl", ["lock", "acquire", "jobs", "--ttl", "0.9", "--hold", "--owner", "op"] + service.ringctl)
        let watcher = try service.client("watcher")
        try await waitUntil("the lock to be held") { try await watcher.status("jobs").holder?.owner == "op" }
        let token = try #require(try await watcher.status("jobs").holder?.token)
        // Several ttls later it is still held with the same token: it was renewed.
        var renewals = 0
        var lastExpiry = try #require(try await watcher.status("jobs").holder?.expiresUnixMicros)
        try await waitUntil("several renewals", timeout: .seconds(20)) {
            let holder = try #require(try await watcher.status("jobs").holder)
            #expect(holder.token == token)
            if holder.expiresUnixMicros > lastExpiry {
                renewals += 1
                lastExpiry = holder.expiresUnixMicros
            }
            return renewals >= 8
        }
        #expect(try await holder.stop(signal: SIGINT) == 0)
        #expect(holder.log.contains("\(token)"))
        let status = try await watcher.status("jobs")
        #expect(status.holder == nil, "released on SIGINT, not left to expire")
        try await service.stop(signal: SIGTERM)
    }

    // MARK: Owners, cancelled and vanished waiters, forgotten names

    @Test func twoRingctlAcquiresWithTheDefaultOwnerAreTwoOwnersAndTheSecondWaits() async throws {
        let service = try LockProcess()
        try await service.start()
        let watcher = try service.client("watcher")
        let first = try await ToolRun.run("ringctl", ["lock", "acquire", "jobs", "--ttl", "60"] + service.ringctl)
        #expect(first.status == 0, "\(first.stderr)")
        // Without --owner, acquire prints the token on stdout and the owner id it generated on stderr.
        let token = try #require(UInt64(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "stdout is the token only: \(first.stdout)")
        let holder = try #require(try await watcher.status("jobs").holder?.owner)
        #expect(first.stderr.contains("--owner \(holder)"), "the generated owner is on stderr: '\(first.stderr)'")
        #expect(holder.contains("@") && holder.split(separator: "/").last.flatMap { Int32($0) } != nil, "user@host/pid: \(holder)")

        // A second ringctl of the same user on the same host is another owner: it queues.
        let second = try ServiceProcess("ringctl", ["lock", "acquire", "jobs", "--ttl", "60", "--wait", "60", "--json"] + service.ringctl)
        try await waitUntil("the second ringctl to queue or end", timeout: .seconds(20)) {
            if !second.isRunning { return true }
            return try await watcher.status("jobs").waiters.count == 1
        }
        #expect(second.isRunning, "the second acquire ended instead of waiting: \(second.log)")
        let waiter = try await watcher.status("jobs").waiters.first?.owner ?? ""
        #expect(!waiter.isEmpty && waiter != holder)

        // A later renew or release must name the owner; without it the error says which one.
        for verb in ["renew", "release"] {
            let anonymous = try await ToolRun.run("ringctl", ["lock", verb, "jobs", "--token", "\(token)"] + service.ringctl)
            #expect(anonymous.status != 0)
            #expect(anonymous.stderr.contains("--owner \(holder)"), "\(verb): \(anonymous.stderr)")
        }
        let release = try await ToolRun.run("ringctl", ["lock", "release", "jobs", "--token", "\(token)", "--owner", holder] + service.ringctl)
        #expect(release.status == 0, "\(release.stderr)")
        #expect(try await second.waitForExit(timeout: .seconds(20)) == 0, "\(second.log)")
        let line = second.log.split(separator: "\n").last.map(String.init) ?? ""
        let granted = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        #expect(granted?["owner"] as? String == waiter, "\(second.log)")
        #expect((granted?["token"] as? Int).map { $0 > Int(token) } == true, "\(second.log)")

        // An explicit owner is one owner: acquiring twice as "op" stays an error.
        let mine = try await ToolRun.run("ringctl", ["lock", "acquire", "other", "--ttl", "60", "--owner", "op"] + service.ringctl)
        #expect(mine.status == 0 && UInt64(mine.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) != nil, "\(mine.stdout)\(mine.stderr)")
        let again = try await ToolRun.run("ringctl", ["lock", "acquire", "other", "--ttl", "60", "--wait", "5", "--owner", "op"] + service.ringctl)
        #expect(again.status != 0 && again.stderr.contains("already held by you"), "\(again.stderr)")
        try await service.stop(signal: SIGTERM)
    }

    @Test func ctrlCOfAWaitingRingctlTakesItOutOfTheQueue() async throws {
        let service = try LockProcess()
        try await service.start()
        let alice = try service.client("alice")
        let held = try await alice.acquire("jobs", ttl: .seconds(60))
        let waiter = try ServiceProcess("ringctl", ["lock", "acquire", "jobs", "--ttl", "30", "--wait", "60", "--owner", "impatient"]
                                            + service.ringctl)
        try await waitUntil("ringctl to queue", timeout: .seconds(20)) {
            try await alice.status("jobs").waiters.map(\.owner) == ["impatient"]
        }
        #expect(try await waiter.stop(signal: SIGINT) == 130, "\(waiter.log)")
        #expect(waiter.log.contains("left the queue"), "\(waiter.log)")
        // The cancel was answered before ringctl exited: the queue is empty now.
        #expect(try await alice.status("jobs").waiters.isEmpty)
        try await alice.release("jobs", token: held.token)
        #expect(try await alice.status("jobs").holder == nil, "nobody is granted the lock after its only waiter left")
        try await service.stop(signal: SIGTERM)
    }

    @Test func aWaiterKilledWithSignalNineIsDroppedAndNeverGranted() async throws {
        let service = try LockProcess()
        try await service.start()
        let alice = try service.client("alice")
        let held = try await alice.acquire("jobs", ttl: .seconds(60))
        let doomed = try ServiceProcess("ringctl", ["lock", "acquire", "jobs", "--ttl", "30", "--wait", "60", "--owner", "doomed"]
                                            + service.ringctl)
        try await waitUntil("ringctl to queue", timeout: .seconds(20)) {
            try await alice.status("jobs").waiters.map(\.owner) == ["doomed"]
        }
        _ = try await doomed.stop(signal: SIGKILL)
        // No cancel could be sent: the service notices the closed connection.
        try await waitUntil("the dead waiter to leave the queue", timeout: .seconds(10)) {
            try await alice.status("jobs").waiters.isEmpty
        }
        try await alice.release("jobs", token: held.token)
        #expect(try await alice.status("jobs").holder == nil)
        try await service.stop(signal: SIGTERM)
    }

    @Test func aFreeLockIsForgottenAfterTheGracePeriodAndItsTokensStillIncreaseAcrossARestart() async throws {
        let service = try LockProcess()
        service.extraArguments = ["--forget-after", "0.3"]
        try await service.start()
        let alice = try service.client("alice")
        var last: UInt64 = 0
        for round in 0..<3 {
            let grant = try await alice.acquire("jobs", ttl: .seconds(30))
            #expect(grant.token > last, "round \(round): \(grant.token) after \(last)")
            last = grant.token
            try await alice.release("jobs", token: grant.token)
            // Forgotten: the service no longer knows the name at all.
            try await waitUntil("jobs to be forgotten", timeout: .seconds(10)) {
                try await alice.status("jobs").lastToken == 0
            }
            if round == 1 {
                #expect(try await service.stop(signal: SIGKILL) != 0)
                try await service.start()
            }
        }
        let kept = try await alice.acquire("kept", ttl: .seconds(60))
        #expect(kept.token > last)
        #expect(try await service.stop(signal: SIGTERM) == 0)
        // Nothing of the forgotten name is left on disk; the held lock is.
        let store = try LockStore(directory: service.directory)
        defer { store.close() }
        #expect(try store.load().map(\.name) == ["kept"])
    }
}
