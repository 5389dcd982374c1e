import ArgumentParser
import Foundation
import RingstoreClient

/// Options that say where the cluster is, shared by every subcommand that talks to it.
struct ClusterOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Placement request endpoint (env RINGSTORE_PLACEMENT).", valueName: "endpoint"))
    var placement: String?

    @Option(help: ArgumentHelp("Lock service request endpoint (env RINGSTORE_LOCKS).", valueName: "endpoint"))
    var locks: String?

    @Option(help: ArgumentHelp("Placement event endpoint (default: the request port plus one).", valueName: "endpoint"))
    var placementEvents: String?

    @Option(help: ArgumentHelp("Lock service event endpoint (default: the request port plus one).", valueName: "endpoint"))
    var lockEvents: String?

    @Option(help: ArgumentHelp("Seconds to wait for each call.", valueName: "seconds"))
    var timeout: Double = 2

    @Flag(help: "Machine-readable output: one JSON object per line.")
    var json = false

    func validate() throws {
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be more than 0 and at most 3600 seconds, not \(timeout)") }
    }

    var endpoints: ClusterEndpoints {
        var endpoints = ClusterEndpoints(placement: placement, locks: locks, environment: ProcessInfo.processInfo.environment)
        if let placementEvents { endpoints.placementEvents = ClusterEndpoints.normalize(placementEvents) }
        if let lockEvents { endpoints.lockEvents = ClusterEndpoints.normalize(lockEvents) }
        return endpoints
    }

    var callTimeout: Duration { .milliseconds(Int64(timeout * 1000)) }

    /// The identity ringctl sends in request headers: `ringctl@host pid`.
    var caller: String {
        "ringctl@\(ProcessInfo.processInfo.hostName)#\(ProcessInfo.processInfo.processIdentifier)"
    }
}
