import ArgumentParser
import Foundation
import RPC
import RingstoreClient
import ZeroMQ

/// `ringctl status`: the health of every service, as a table or JSON lines.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the health of the placement service, the lock service and the storage nodes.",
        discussion: "Exits 1 when any service is unreachable or not serving."
    )

    @OptionGroup var cluster: ClusterOptions

    @Option(help: ArgumentHelp("Storage nodes to ask, comma-separated host:port (default: 127.0.0.1:7501-7503).", valueName: "addresses"))
    var nodes: String?

    @Option(help: ArgumentHelp("Keep asking until every service is healthy or this many seconds passed.", valueName: "seconds"))
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

    private func nodeList(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func run() async throws {
        var endpoints = cluster.endpoints
        if let nodes { endpoints.nodes = nodeList(nodes) }
        let context = try ZMQContext()
        defer { context.shutdown() }
        let targets = HealthCheck.targets(for: endpoints)
        let clock = ContinuousClock()
        let giveUp = clock.now + .milliseconds(Int64(wait * 1000))
        var results = await HealthCheck.run(targets, context: context, caller: cluster.caller, timeout: cluster.callTimeout)
        while !results.allSatisfy(\.isHealthy) && clock.now < giveUp {
            try await Task.sleep(for: .milliseconds(200))
            results = await HealthCheck.run(targets, context: context, caller: cluster.caller, timeout: cluster.callTimeout)
        }
        if cluster.json {
            for result in results { print(StatusFormatter.json(result)) }
        } else {
            print(StatusFormatter.table(results), terminator: "")
        }
        let failed = results.filter { !$0.isHealthy }
        if !failed.isEmpty {
            printError("ringctl: \(failed.count) of \(results.count) services unreachable or not serving")
            throw ExitCode(1)
        }
    }
}
