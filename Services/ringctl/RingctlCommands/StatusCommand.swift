import ArgumentParser
import Foundation
import RingstoreClient

/// `ringctl status`: the health of every service, as a table or JSON lines.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the health of the placement service, the lock service and the storage nodes.",
        discussion: """
            Each placement and lock service replica (every endpoint of --placement and --locks) is asked on its own and \
            shown with its role: leader, follower (with the leader it knows) or unreachable. \
            Exits 1 when any service or replica is unreachable or not serving.
            """
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: ArgumentHelp("Storage nodes to ask, comma-separated host:port (default: the members placement knows, else 127.0.0.1:7501-7503).", valueName: "addresses"))
    var nodes: String?

    @Option(help: ArgumentHelp("Keep asking until every service is healthy (placement and the lock service with a leader), every node an up member and no migration in flight, or this many seconds passed.", valueName: "seconds"))
    var wait: Double = 0

    @Flag(help: "Refresh until interrupted (Ctrl-C): in place on a terminal, one report after another otherwise; migrations show their progress.")
    var watch = false

    @Option(help: ArgumentHelp("With --watch: seconds between refreshes.", valueName: "seconds"))
    var interval: Double = 1

    func validate() throws {
        if let nodes {
            for node in nodeList(nodes) {
                guard let colon = node.lastIndex(of: ":"), colon != node.startIndex,
                      let port = UInt16(node[node.index(after: colon)...]), port > 0
                else { throw ValidationError("--nodes: '\(node)' is not host:port") }
            }
        }
        guard wait >= 0, wait <= 3600 else { throw ValidationError("--wait must be between 0 and 3600 seconds") }
        guard interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval must be between 0.1 and 3600 seconds") }
        if watch && wait > 0 { throw ValidationError("--watch and --wait do not go together") }
    }

    /// One round of health calls: placement, lock, and the nodes given with
    /// `--nodes`, else the members placement knows now, else the defaults.
    private func sweep(context: ClientContext, placement: PlacementClient) async -> [HealthResult] {
        var endpoints = cluster.endpoints
        if let nodes {
            endpoints.nodes = nodeList(nodes)
        } else if let members = try? await placement.members().members.map(\.address), !members.isEmpty {
            endpoints.nodes = members
        }
        return await HealthCheck.run(HealthCheck.targets(for: endpoints), context: context, caller: cluster.caller,
                                     timeout: cluster.callTimeout)
    }

    private func nodeList(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() async throws {
        let context = try cluster.context()
        defer { context.shutdown() }
        let placement = try PlacementClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller,
                                            callTimeout: cluster.callTimeout)
        defer { placement.close() }
        let clock = ContinuousClock()
        let giveUp = clock.now + .seconds(wait)
        var results = await sweep(context: context, placement: placement)
        var ring = try? await placement.ring()
        while !Self.settled(results, ring: ring) && clock.now < giveUp {
            try await Task.sleep(for: .milliseconds(200))
            results = await sweep(context: context, placement: placement)
            ring = try? await placement.ring()
        }
        if watch {
            try await watchLoop(context: context, placement: placement)
        }
        print(report(results, ring: ring), terminator: "")
        let failed = results.filter { !$0.isHealthy }
        if !failed.isEmpty {
            printError("ringctl: \(failed.count) of \(results.count) services unreachable or not serving")
            throw ExitCode(1)
        }
    }

    /// Every service healthy, every node an up member, a leader for each
    /// replicated service, and no migration in flight.
    static func settled(_ results: [HealthResult], ring: ClusterRing?) -> Bool {
        results.allSatisfy(\.isSettled) && HealthCheck.everyServiceHasALeader(results) && (ring?.plan.isSettled ?? true)
    }

    /// One report: the table (or JSON lines) and the migrations in flight.
    private func report(_ results: [HealthResult], ring: ClusterRing?) -> String {
        let arcs = ring?.arcsPerMember ?? [:]
        if cluster.json {
            let lines = results.map { StatusFormatter.json($0, arcs: arcs) } + (ring?.plan.transfers ?? []).map(StatusFormatter.json)
            return lines.map { $0 + "\n" }.joined()
        }
        var text = StatusFormatter.table(results, arcs: arcs)
        if let plan = ring?.plan, !plan.transfers.isEmpty {
            text += "\n" + StatusFormatter.migrations(plan)
        }
        return text
    }

    /// `--watch`: a report every interval until interrupted. On a terminal
    /// each one replaces the last (the cursor goes back up over it); piped,
    /// or with --json, they follow one another.
    private func watchLoop(context: ClientContext, placement: PlacementClient) async throws -> Never {
        let inPlace = !cluster.json && StdIO.isTerminal(1)
        var shownLines = 0
        while true {
            let results = await sweep(context: context, placement: placement)
            let ring = try? await placement.ring()
            var text = report(results, ring: ring)
            if !cluster.json {
                text = "\(Timestamp.iso8601(micros: Int64(Date().timeIntervalSince1970 * 1_000_000)))  (every \(interval)s, Ctrl-C to stop)\n" + text
            }
            if inPlace {
                let erase = shownLines > 0 ? "\u{1B}[\(shownLines)A\u{1B}[J" : ""
                StdIO.write(1, text: erase + text)
                shownLines = text.filter { $0 == "\n" }.count
            } else {
                StdIO.write(1, text: text + (cluster.json ? "" : "\n"))
            }
            try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
        }
    }
}
