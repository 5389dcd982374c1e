import ArgumentParser
import Basics
import Foundation
import RingstoreClient
import Glibc
import Synchronization

/// `ringctl lock ...`: leases with fencing tokens.
struct LockGroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Acquire, renew, release and inspect locks (leases with fencing tokens).",
        discussion: """
            Every invocation is its own owner unless --owner names one: by default the owner id is \
            USER@HOST/PID, unique to the process, so two shells (or two scripts) of one user on one \
            host are two owners and the second waits for the first. lock acquire prints the owner it \
            generated on stderr (stdout has the token only); a later lock renew or lock release must pass it with --owner \
            (or name a stable owner with --owner at acquire). Tokens strictly increase per lock name \
            (they come from one counter for all locks, so they need not be consecutive); pass them \
            with fenced writes (put --fence NAME:TOKEN).
            """,
        subcommands: [LockAcquireCommand.self, LockRenewCommand.self, LockReleaseCommand.self,
                      LockStatusCommand.self, LockListCommand.self]
    )
}

/// `ringctl lock acquire NAME --ttl S [--wait S] [--hold]`.
struct LockAcquireCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acquire",
        abstract: "Acquire a lock: prints its fencing token (the generated owner id goes to stderr).",
        discussion: """
            Prints the token on stdout; without --owner, the owner id generated for this invocation \
            goes to stderr, and a later renew or release must pass it as --owner. --json \
            prints name, owner, token, ttl_ms and expires. Without --wait it tries once and fails \
            (FAILED_PRECONDITION) when the lock is held; with --wait it queues (FIFO) and gets the \
            lock the moment it passes on, or fails with DEADLINE_EXCEEDED when the wait runs out. \
            SIGINT or SIGTERM while waiting takes the request out of the queue (exit 130 or 143). \
            With --hold it keeps the lease renewed (every third of the ttl) until SIGINT or SIGTERM, \
            then releases it and exits 0; if the lease is lost meanwhile it says so on stderr and \
            exits 1.
            """
    )

    @Argument(help: "The lock's name.") var name: String
    @Option(help: ArgumentHelp("Lease length in seconds.", valueName: "seconds")) var ttl: Double
    @Option(help: ArgumentHelp("Seconds to wait in the queue while the lock is held (0: try once).", valueName: "seconds"))
    var wait: Double = 0
    @Flag(help: "Keep the lease renewed until interrupted (SIGINT, SIGTERM), then release it.") var hold = false
    @OptionGroup var owner: LockOwnerOptions
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        try Seconds.validate(ttl, "--ttl", allowZero: false)
        try Seconds.validate(wait, "--wait", allowZero: true)
    }

    func run() async throws {
        let session = try LockSession(cluster, owner: owner.resolved)
        defer { session.close() }
        let ttl = Seconds.duration(ttl), wait = Seconds.duration(wait)
        let client = session.client, name = name
        let interrupted = InterruptFlag()
        guard hold else {
            // SIGINT or SIGTERM cancels the acquire, which takes it out of the
            // service's queue (LockClient cancels it there) before ringctl exits.
            // The watch is in place before the request leaves, so no signal
            // is missed: the handler sets the flag before it looks for the
            // task, and the task is stored before the flag is checked.
            let pending = Mutex<Task<LockGrant, any Error>?>(nil)
            let signals = try SignalWatch([SIGINT, SIGTERM]) { number in
                interrupted.set(number)
                pending.withLock { $0?.cancel() }
            }
            defer { signals.cancel() }
            let attempt = Task { try await client.acquire(name, ttl: ttl, wait: wait) }
            pending.withLock { $0 = attempt }
            if interrupted.signal != nil { attempt.cancel() }
            do {
                print(render(try await attempt.value))
            } catch {
                throw Self.failure(name, error, interrupted: interrupted)
            }
            return
        }

        let (ends, feed) = AsyncStream.makeStream(of: HoldEnd.self)
        let pending = Mutex<Task<LeaseKeeper, any Error>?>(nil)
        let signals = try SignalWatch([SIGINT, SIGTERM]) { number in
            interrupted.set(number)
            pending.withLock { $0?.cancel() }  // while waiting; once held, the signal ends the hold below
            feed.yield(.signal(number))
        }
        defer { signals.cancel() }
        let attempt = Task { try await client.hold(name, ttl: ttl, wait: wait) { reason in feed.yield(.lost(reason)) } }
        pending.withLock { $0 = attempt }
        if interrupted.signal != nil { attempt.cancel() }
        let keeper: LeaseKeeper
        do {
            keeper = try await attempt.value
        } catch {
            throw Self.failure(name, error, interrupted: interrupted)
        }
        // Unbuffered, so a script reading the pipe sees the token while the lock is held.
        FileHandle.standardOutput.write(Data((render(keeper.grant) + "\n").utf8))
        for await end in ends {
            switch end {
            case .signal:
                do {
                    try await keeper.release()
                } catch {
                    throw LockOutput.fail("lock release \(name) token \(keeper.token)", error)
                }
                printError("ringctl: released \(name) (token \(keeper.token))")
                return
            case .lost(let reason):
                printError("ringctl: lost lock \(name) (token \(keeper.token)): \(reason)")
                throw ExitCode(1)
            }
        }
    }

    /// The token (stdout stays what scripts capture: `T=$(ringctl lock acquire ...)`);
    /// a generated owner, which a later renew or release needs, goes to stderr.
    /// --json has both always.
    private func render(_ grant: LockGrant) -> String {
        if cluster.json { return JSONLine.encode(LockOutput.grant(grant)) }
        if owner.isGenerated {
            printError("ringctl: lock \(grant.name) held by owner \(grant.owner); renew or release it with --owner \(grant.owner)")
        }
        return "\(grant.token)"
    }

    /// How a failed acquire ends ringctl: 128 + the signal when interrupted.
    private static func failure(_ name: String, _ error: any Error, interrupted: InterruptFlag) -> ExitCode {
        guard let number = interrupted.signal else { return LockOutput.fail("lock acquire \(name)", error) }
        printError("ringctl: lock acquire \(name): interrupted by signal \(number): \(error)")
        return ExitCode(128 + number)
    }
}

/// `ringctl lock renew NAME --token T [--ttl S]`.
struct LockRenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Extend a held lease: prints its new expiry.",
        discussion: "Pass the owner that acquired with --owner (the one lock acquire printed)."
    )

    @Argument(help: "The lock's name.") var name: String
    @Option(help: "The token acquire printed.") var token: UInt64
    @Option(help: ArgumentHelp("New lease length in seconds (default: the lease's ttl).", valueName: "seconds")) var ttl: Double?
    @OptionGroup var owner: LockOwnerOptions
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        try Seconds.validate(ttl, "--ttl", allowZero: false)
    }

    func run() async throws {
        let session = try LockSession(cluster, owner: owner.resolved)
        defer { session.close() }
        let grant: LockGrant
        do {
            grant = try await session.client.renew(name, token: token, ttl: ttl.map(Seconds.duration))
        } catch {
            let hint = await LockOutput.ownerHint(error, client: session.client, name: name, token: token)
            throw LockOutput.fail("lock renew \(name)", error, hint: hint)
        }
        print(cluster.json ? JSONLine.encode(LockOutput.grant(grant)) : "OK expires \(Timestamp.iso8601(micros: grant.expiresUnixMicros))")
    }
}

/// `ringctl lock release NAME --token T`.
struct LockReleaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Release a held lock; the next waiter gets it.",
        discussion: "Pass the owner that acquired with --owner (the one lock acquire printed)."
    )

    @Argument(help: "The lock's name.") var name: String
    @Option(help: "The token acquire printed.") var token: UInt64
    @OptionGroup var owner: LockOwnerOptions
    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let session = try LockSession(cluster, owner: owner.resolved)
        defer { session.close() }
        do {
            try await session.client.release(name, token: token)
        } catch {
            let hint = await LockOutput.ownerHint(error, client: session.client, name: name, token: token)
            throw LockOutput.fail("lock release \(name)", error, hint: hint)
        }
        print(cluster.json ? JSONLine.encode(["name": name, "token": Int(token), "released": true]) : "OK")
    }
}

/// `ringctl lock status NAME`.
struct LockStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a lock's holder, lease, waiters and last token (a free lock is not an error)."
    )

    @Argument(help: "The lock's name.") var name: String
    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let session = try LockSession(cluster, owner: LockOwnerOptions.defaultOwner)
        defer { session.close() }
        let info: LockInfo
        do {
            info = try await session.client.status(name)
        } catch {
            throw LockOutput.fail("lock status \(name)", error)
        }
        if cluster.json {
            print(JSONLine.encode(LockOutput.json(info)))
            return
        }
        print(Table.render([LockOutput.header, LockOutput.row(info)]), terminator: "")
        for (index, waiter) in info.waiters.enumerated() {
            print("waiter \(index + 1): \(waiter.owner) until \(Timestamp.iso8601(micros: waiter.waitUntilUnixMicros))")
        }
    }
}

/// `ringctl lock list`.
struct LockListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the locks that are held or waited for."
    )

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let session = try LockSession(cluster, owner: LockOwnerOptions.defaultOwner)
        defer { session.close() }
        let locks: [LockInfo]
        do {
            locks = try await session.client.list()
        } catch {
            throw LockOutput.fail("lock list", error)
        }
        if cluster.json {
            for info in locks { print(JSONLine.encode(LockOutput.json(info))) }
        } else {
            print(Table.render([LockOutput.header] + locks.map(LockOutput.row)), terminator: "")
        }
    }
}
