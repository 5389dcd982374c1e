import ArgumentParser
import Basics
import Dispatch
import Foundation
import RingstoreClient
import Synchronization
import Glibc

/// The owner a lock command acts as.
struct LockOwnerOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Owner id (default: USER@HOST/PID, unique to this invocation); renew and release need the owner that acquired.",
        valueName: "id"))
    var owner: String?

    var resolved: String { owner ?? Self.defaultOwner }

    /// Whether the owner was generated rather than named with --owner.
    var isGenerated: Bool { owner == nil }

    /// `user@host/pid`: one owner per client session (this process), from the
    /// environment (USER, LOGNAME) or the password database.
    static var defaultOwner: String {
        let environment = ProcessInfo.processInfo.environment
        var user = environment["USER"] ?? environment["LOGNAME"] ?? ""
        if user.isEmpty, let entry = getpwuid(getuid()), let name = entry.pointee.pw_name {
            user = String(cString: name)
        }
        if user.isEmpty { user = "uid\(getuid())" }
        return "\(user)@\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)"
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
    let context: ClientContext
    let client: LockClient

    init(_ cluster: ClusterOptions, owner: String) throws {
        context = try cluster.context()
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
         "ttl_ms": Int(grant.ttl.wholeMilliseconds),
         "expires": Timestamp.iso8601(micros: grant.expiresUnixMicros)]
    }

    static func json(_ info: LockInfo) -> [String: Any] {
        var object: [String: Any] = ["name": info.name, "held": info.holder != nil, "last_token": Int(info.lastToken),
                                     "waiters": info.waiters.map { ["owner": $0.owner, "until": Timestamp.iso8601(micros: $0.waitUntilUnixMicros)] }]
        if let holder = info.holder {
            object["owner"] = holder.owner
            object["token"] = Int(holder.token)
            object["ttl_ms"] = Int(holder.ttlMillis)
            object["expires"] = Timestamp.iso8601(micros: holder.expiresUnixMicros)
        }
        return object
    }

    static let header = ["NAME", "STATE", "OWNER", "TOKEN", "EXPIRES", "WAITERS", "LAST_TOKEN"]

    static func row(_ info: LockInfo) -> [String] {
        let holder = info.holder
        return [info.name, holder == nil ? "free" : "held", holder?.owner ?? "-", holder.map { "\($0.token)" } ?? "-",
                holder.map { Timestamp.iso8601(micros: $0.expiresUnixMicros) } ?? "-", "\(info.waiters.count)", "\(info.lastToken)"]
    }

    static func fail(_ what: String, _ error: any Error, hint: String? = nil) -> ExitCode {
        printError("ringctl: \(what): \(error)" + (hint.map { "; \($0)" } ?? ""))
        return ExitCode(1)
    }

    /// For a renew or release refused with FAILED_PRECONDITION: when `token`
    /// is the current lease of `name` but held by another owner, says which
    /// --owner to pass (with a generated owner, every invocation is a new one).
    static func ownerHint(_ error: any Error, client: LockClient, name: String, token: UInt64) async -> String? {
        guard (error as? RingstoreError)?.code == .failedPrecondition,
              let holder = try? await client.status(name).holder, holder.token == token, holder.owner != client.owner
        else { return nil }
        return "pass --owner \(shellQuoted(holder.owner)), the owner that acquired token \(token) " +
            "(without --owner every ringctl invocation is a new owner)"
    }

    /// `value` as one shell word.
    static func shellQuoted(_ value: String) -> String {
        let plain = value.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "@/._:+-=,".unicodeScalars.contains($0) }
        return plain ? value : "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// The signal that interrupted a command, set from a signal handler's queue.
final class InterruptFlag: Sendable {
    private let state = Mutex<Int32?>(nil)
    func set(_ number: Int32) { state.withLock { $0 = $0 ?? number } }
    var signal: Int32? { state.withLock { $0 } }
}

/// How `--hold` ends.
enum HoldEnd: Sendable {
    case signal(Int32)
    case lost(String)
}
