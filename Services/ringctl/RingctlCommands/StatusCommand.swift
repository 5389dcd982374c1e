import ArgumentParser
import Foundation
import RingstoreClient

/// `ringctl status`: the health of every service, as a table or JSON lines.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the health of the placement service, the lock service and the storage nodes.",
        discussion: "Exits 1 when any service is unreachable or not serving."
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: ArgumentHelp("Storage nodes to ask, comma-separated host:port (default: the members placement knows, else 127.0.0.1:7501-7503).", valueName: "addresses"))
    var nodes: String?

    @Option(help: ArgumentHelp("Keep asking until every service is healthy, every node an up member and no migration in flight, or this many seconds passed.", valueName: "seconds"))
    var wait: Double = 0

    func validate() throws {
        if let nodes {
            for node in nodeList(nodes) {
                guard let colon = node.lastIndex(of: ":"), colon != node.startIndex,
                      let port = UInt16(node[node.index(after: colon)...]), port > 0
                else { throw ValidationError("--nodes: '\(node)' is not host:port") }
            }
        }
        guard wait >= 0, wait <= 3600 else { throw ValidationError("--wait must be between 0 and 3600 seconds") }
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
        while !(results.allSatisfy(\.isSettled) && (ring?.plan.isSettled ?? true)) && clock.now < giveUp {
            try await Task.sleep(for: .milliseconds(200))
            results = await sweep(context: context, placement: placement)
            ring = try? await placement.ring()
        }
        let arcs = ring?.arcsPerMember ?? [:]
        if cluster.json {
            for result in results { print(StatusFormatter.json(result, arcs: arcs)) }
            for transfer in ring?.plan.transfers ?? [] { print(StatusFormatter.json(transfer)) }
        } else {
            print(StatusFormatter.table(results, arcs: arcs), terminator: "")
            if let plan = ring?.plan, !plan.transfers.isEmpty {
                print("")
                print(StatusFormatter.migrations(plan), terminator: "")
            }
        }
        let failed = results.filter { !$0.isHealthy }
        if !failed.isEmpty {
            printError("ringctl: \(failed.count) of \(results.count) services unreachable or not serving")
            throw ExitCode(1)
        }
    }
}
