import Foundation
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
    /// survives its restarts.
    final class LockProcess: @unchecked Sendable {
        let listen = FreePort.endpoint()
        let publish = FreePort.endpoint()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-lockproc-\(UUID().uuidString)")
        let context: ZMQContext
        private(set) var process: ServiceProcess?

        init() throws {
            context = try ZMQContext()
        }

        deinit {
            try? FileManager.default.removeItem(at: directory)
        }

        func start() async throws {
            process = try ServiceProcess("ringstore-lock", ["--listen", listen, "--publish", publish,
                                                            "--data-dir", directory.path, "--max-ttl", "120"])
            let rpc = try RPCClient(context: context, endpoint: listen, caller: "lock-process-tests")
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

        func client(_ owner: String) throws -> LockClient {
            try LockClient(context: context, endpoint: listen, owner: owner, callTimeout: .seconds(5))
        }

        var ringctl: [String] { ["--locks", listen, "--lock-events", publish] }
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
        let bob = try service.client("bob")

        // Right after the restart alice's lease could still be live: bob must not get it.
        let early = await outcome { try await bob.acquire("jobs", ttl: .seconds(30)) }
        #expect(early.failureCode == .failedPrecondition)
        if case .failure(let error) = early { #expect(error.message.contains("held by alice"), "\(error)") }
        let status = try await bob.status("jobs")
        #expect(status.holder.owner == "alice" && status.holder.token == lease.token)

        // alice stops renewing; bob waits and gets it once the restored lease ran out, with a newer token.
        let grant = try await bob.acquire("jobs", ttl: .seconds(30), wait: .seconds(30))
        #expect(grant.token > lease.token)
        let stale = await outcome { try await alice.renew("jobs", token: lease.token) }
        #expect(stale.failureCode == .failedPrecondition)
        #expect(try await bob.acquire("cycled", ttl: .seconds(5)).token == last + 1)

        // And once more, killed right after a grant: its token is durable.
        #expect(try await service.stop(signal: SIGKILL) != 0)
        try await service.start()
        let carol = try service.client("carol")
        #expect(try await carol.status("jobs").holder.token == grant.token)
        #expect(try await carol.status("cycled").lastToken == last + 1)
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
        #expect(lines.first?.contains("lock acquired seq=2 name=jobs owner=alice token=1") == true, "\(watch.log)")
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
        try await waitUntil("the lock to be held") { try await watcher.status("jobs").holder.owner == "op" }
        let token = try await watcher.status("jobs").holder.token
        // Several ttls later it is still held with the same token: it was renewed.
        var renewals = 0
        var lastExpiry = try await watcher.status("jobs").holder.expiresUnixMicros
        try await waitUntil("several renewals", timeout: .seconds(20)) {
            let holder = try await watcher.status("jobs").holder
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
        #expect(!status.hasHolder, "released on SIGINT, not left to expire")
        try await service.stop(signal: SIGTERM)
    }
}
