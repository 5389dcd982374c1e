import ArgumentParser
import Foundation
import RingstoreClient

/// Options that say where the cluster is, shared by every subcommand that talks to it.
struct ClusterOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Placement request endpoints, comma-separated for a replicated placement: a:7400,b:7402 (env RINGSTORE_PLACEMENT).",
                               valueName: "endpoints"))
    var placement: String?

    @Option(help: ArgumentHelp("Lock service request endpoints, comma-separated for a replicated lock service (env RINGSTORE_LOCKS).",
                               valueName: "endpoints"))
    var locks: String?

    @Option(help: ArgumentHelp("Placement event endpoints, comma-separated (default: each request port plus one).", valueName: "endpoints"))
    var placementEvents: String?

    @Option(help: ArgumentHelp("Lock service event endpoints, comma-separated (default: each request port plus one).", valueName: "endpoints"))
    var lockEvents: String?

    @Option(help: ArgumentHelp("Seconds to wait for each call.", valueName: "seconds"))
    var timeout: Double = 2

    @Flag(help: "Machine-readable output: one JSON object per line.")
    var json = false

    @Option(help: ArgumentHelp("CURVE: this client's keypair, a .secret file (env RINGSTORE_KEY; default .run/keys/admin.secret when present).",
                               valueName: "file"))
    var key: String?

    @Option(help: ArgumentHelp("CURVE: the cluster's server public key, a .pub file (env RINGSTORE_SERVER_KEY; default .run/keys/cluster.pub when present).",
                               valueName: "file"))
    var serverKey: String?

    @Flag(help: "Talk to the cluster without CURVE (a cluster started with --insecure).")
    var insecure = false

    func validate() throws {
        if insecure && (key != nil || serverKey != nil) { throw ValidationError("--insecure excludes --key and --server-key") }
        for (option, value) in [("placement", placement), ("locks", locks), ("placement-events", placementEvents), ("lock-events", lockEvents)] {
            guard let value else { continue }
            let endpoints = ClusterEndpoints.parse(value)
            if endpoints.isEmpty { throw ValidationError("--\(option): no endpoint in '\(value)'") }
            if let problem = endpoints.lazy.compactMap(ClusterEndpoints.problem(with:)).first { throw ValidationError("--\(option): \(problem)") }
        }
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be more than 0 and at most 3600 seconds, not \(timeout)") }
    }

    var endpoints: ClusterEndpoints {
        var endpoints = ClusterEndpoints(placement: placement, locks: locks, environment: ProcessInfo.processInfo.environment)
        if let placementEvents { endpoints.placementEvents = ClusterEndpoints.parse(placementEvents) }
        if let lockEvents { endpoints.lockEvents = ClusterEndpoints.parse(lockEvents) }
        return endpoints
    }

    var callTimeout: Duration { .milliseconds(Int64(timeout * 1000)) }

    /// The key files to use: the options, else the environment, else the
    /// local cluster's under `.run/keys/` when both exist; nil without CURVE.
    var keyFiles: (key: String, serverKey: String)? {
        guard !insecure else { return nil }
        let environment = ProcessInfo.processInfo.environment
        let key = key ?? environment["RINGSTORE_KEY"]
        let serverKey = serverKey ?? environment["RINGSTORE_SERVER_KEY"]
        if let key, let serverKey { return (key, serverKey) }
        let local = (key ?? ".run/keys/admin.secret", serverKey ?? ".run/keys/cluster.pub")
        let files = FileManager.default
        return files.fileExists(atPath: local.0) && files.fileExists(atPath: local.1) ? local : nil
    }

    /// The client context of one command: with the credentials `keyFiles`
    /// names, or without CURVE when --insecure says so. No keys, or bad key
    /// files, end the command (exit 2) before it waits on a handshake that
    /// a secured cluster would never finish.
    func context() throws -> ClientContext {
        if insecure { return try ClientContext() }
        guard let files = keyFiles else {
            printError("ringctl: no CURVE key: pass --key and --server-key (or RINGSTORE_KEY and RINGSTORE_SERVER_KEY), " +
                       "run it where .run/keys/admin.secret and .run/keys/cluster.pub are (the checkout `make up` ran in), " +
                       "or --insecure for a cluster started with --insecure")
            throw ExitCode(2)
        }
        do {
            let credentials = try Credentials(keyFile: URL(fileURLWithPath: files.key), serverKeyFile: URL(fileURLWithPath: files.serverKey))
            return try ClientContext(credentials: credentials)
        } catch {
            printError("ringctl: \(error.message)")
            throw ExitCode(2)
        }
    }

    /// The identity ringctl sends in request headers: `ringctl@host pid`.
    var caller: String {
        "ringctl@\(ProcessInfo.processInfo.hostName)#\(ProcessInfo.processInfo.processIdentifier)"
    }
}
