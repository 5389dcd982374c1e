import ArgumentParser
import Dispatch
import Foundation
import RPC
import RingProtocol
import RingstoreClient
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `ringctl lock ...`: leases with fencing tokens.
struct LockGroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lock",
        abstract: "Acquire, renew, release and inspect locks (leases with fencing tokens).",
        discussion: """
            The owner id is --owner, by default USER@HOST, so that a later invocation by the same \
            operator can renew or release with the printed token. Tokens strictly increase per lock \
            name; pass them with fenced writes (put --fence NAME:TOKEN).
            """,
        subcommands: [LockAcquireCommand.self, LockRenewCommand.self, LockReleaseCommand.self,
                      LockStatusCommand.self, LockListCommand.self]
    )
}

/// The owner a lock command acts as.
struct LockOwnerOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Owner id (default: USER@HOST); renew and release need the owner that acquired.", valueName: "id"))
    var owner: String?

    var resolved: String { owner ?? Self.defaultOwner }

    /// `user@host`, from the environment (USER, LOGNAME) or the password database.
    static var defaultOwner: String {
        let environment = ProcessInfo.processInfo.environment
        var user = environment["USER"] ?? environment["LOGNAME"] ?? ""
        if user.isEmpty, let entry = getpwuid(getuid()), let name = entry.pointee.pw_name {
            user = String(cString: name)
        }
        if user.isEmpty { user = "uid\(getuid())" }
        return "\(user)@\(ProcessInfo.processInfo.hostName)"
    }
}

/// Seconds given on the command line as a `Duration`.
enum Seconds {
    static func duration(_ seconds: Double) -> Duration {
        .microseconds(Int64((seconds * 1_000_000).rounded()))
    }

    static func validate(_ seconds: Double?, _ option: String, allowZero: Bool) throws {
        guard let seconds else { return }
        guard seconds.isFinite, allowZero ? seconds >= 0 : seconds > 0, seconds <= 86_400 * 365 else {
            throw ValidationError("\(option) must be \(allowZero ? "zero or more" : "more than zero") seconds")
        }
    }
}

/// A lock client for one command, closed when the command ends.
struct LockSession {
    let context: ZMQContext
    let client: LockClient

    init(_ cluster: ClusterOptions, owner: String) throws {
        context = try ZMQContext()
        client = try LockClient(context: context, endpoints: cluster.endpoints, owner: owner, caller: cluster.caller,
                                callTimeout: cluster.callTimeout)
    }

    func close() {
        client.close()
        context.shutdown()
    }
}

/// How grants and lock states are printed.
enum LockOutput {
    static func grant(_ grant: LockGrant) -> [String: Any] {
        ["name": grant.name, "owner": grant.owner, "token": Int(grant.token),
         "ttl_ms": Int(grant.ttl.components.seconds * 1000 + grant.ttl.components.attoseconds / 1_000_000_000_000_000),
         "expires": Timestamp.iso8601(micros: grant.expiresUnixMicros)]
    }

    static func json(_ info: WireLockInfo) -> [String: Any] {
        var object: [String: Any] = ["name": info.name, "held": info.hasHolder, "last_token": Int(info.lastToken),
                                     "waiters": info.waiters.map { ["owner": $0.owner, "until": Timestamp.iso8601(micros: $0.waitUntilUnixMicros)] }]
        if info.hasHolder {
            object["owner"] = info.holder.owner
            object["token"] = Int(info.holder.token)
            object["ttl_ms"] = Int(info.holder.ttlMillis)
            object["expires"] = Timestamp.iso8601(micros: info.holder.expiresUnixMicros)
        }
        return object
    }

    static let header = ["NAME", "STATE", "OWNER", "TOKEN", "EXPIRES", "WAITERS", "LAST_TOKEN"]

    static func row(_ info: WireLockInfo) -> [String] {
        let held = info.hasHolder
        return [info.name, held ? "held" : "free", held ? info.holder.owner : "-", held ? "\(info.holder.token)" : "-",
                held ? Timestamp.iso8601(micros: info.holder.expiresUnixMicros) : "-", "\(info.waiters.count)", "\(info.lastToken)"]
    }

    static func fail(_ what: String, _ error: any Error) -> ExitCode {
        printError("ringctl: \(what): \(error)")
        return ExitCode(1)
    }
}

/// `ringctl lock acquire NAME --ttl S [--wait S] [--hold]`.
struct LockAcquireCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acquire",
        abstract: "Acquire a lock: prints its fencing token.",
        discussion: """
            Without --wait it tries once and fails (FAILED_PRECONDITION) when the lock is held; with \
            --wait it queues (FIFO) and gets the lock the moment it passes on, or fails with \
            DEADLINE_EXCEEDED when the wait runs out. With --hold it keeps the lease renewed (every \
            third of the ttl) until SIGINT or SIGTERM, then releases it and exits 0; if the lease is \
            lost meanwhile it says so on stderr and exits 1.
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
        guard hold else {
            do {
                print(render(try await session.client.acquire(name, ttl: ttl, wait: wait)))
            } catch {
                throw LockOutput.fail("lock acquire \(name)", error)
            }
            return
        }

        let (ends, feed) = AsyncStream.makeStream(of: HoldEnd.self)
        let keeper: LeaseKeeper
        do {
            keeper = try await session.client.hold(name, ttl: ttl, wait: wait) { reason in feed.yield(.lost(reason)) }
        } catch {
            throw LockOutput.fail("lock acquire \(name)", error)
        }
        let signals = SignalWatch([SIGINT, SIGTERM]) { number in feed.yield(.signal(number)) }
        defer { signals.cancel() }
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

    private func render(_ grant: LockGrant) -> String {
        cluster.json ? JSONLine.encode(LockOutput.grant(grant)) : "\(grant.token)"
    }
}

/// How `--hold` ends.
enum HoldEnd: Sendable {
    case signal(Int32)
    case lost(String)
}

/// Turns signals into calls of `handler` (on a background queue) instead of
/// terminating the process, until cancelled. Used by the task that made it.
final class SignalWatch {
    private let sources: [any DispatchSourceSignal]

    init(_ numbers: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    func cancel() {
        for source in sources { source.cancel() }
    }
}

/// `ringctl lock renew NAME --token T [--ttl S]`.
struct LockRenewCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "renew",
        abstract: "Extend a held lease: prints its new expiry."
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
            throw LockOutput.fail("lock renew \(name)", error)
        }
        print(cluster.json ? JSONLine.encode(LockOutput.grant(grant)) : "OK expires \(Timestamp.iso8601(micros: grant.expiresUnixMicros))")
    }
}

/// `ringctl lock release NAME --token T`.
struct LockReleaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release",
        abstract: "Release a held lock; the next waiter gets it."
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
            throw LockOutput.fail("lock release \(name)", error)
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
        let info: WireLockInfo
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
        let locks: [WireLockInfo]
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
