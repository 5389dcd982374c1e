import ArgumentParser
import Foundation
import RingstoreClient

/// `ringctl repair [ADDRESS]`: an anti-entropy pass now, on one node or on every member in turn.
struct RepairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Run anti-entropy now: compare a node's arcs with their other replicas and repair what differs.",
        discussion: """
            With ADDRESS, one node runs a full pass; without, every member placement knows does, one after another. \
            Prints per node the arcs compared and found differing, the rows pushed to peers and pulled from them, \
            and the duration. Exits 1 when any node could not run its pass.
            """
    )

    @Argument(help: "The node to repair, host:port (default: every member, in turn).")
    var address: String?

    @Option(help: ArgumentHelp("Seconds to wait for each node's pass.", valueName: "seconds"))
    var passTimeout: Double = 3600

    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        if let address {
            guard let colon = address.lastIndex(of: ":"), colon != address.startIndex,
                  let port = UInt16(address[address.index(after: colon)...]), port > 0
            else { throw ValidationError("'\(address)' is not host:port") }
        }
        guard passTimeout > 0, passTimeout <= 86_400 else { throw ValidationError("--pass-timeout must be between 0 and 86400 seconds") }
    }

    func run() async throws {
        let context = try cluster.context()
        defer { context.shutdown() }
        var nodes: [String]
        var failed = 0
        if let address {
            nodes = [address]
        } else {
            let session = try PlacementSession(cluster)
            defer { session.close() }
            let reply = try await session.call(what: "cannot list members") { client throws(RingstoreError) in try await client.members() }
            guard !reply.members.isEmpty else {
                printError("ringctl: the cluster has no members")
                throw ExitCode(1)
            }
            nodes = []
            for member in reply.members {
                if member.state == .up {
                    nodes.append(member.address)
                } else {
                    failed += 1
                    printError("ringctl: cannot repair \(member.address): it is \(member.state.rawValue)")
                }
            }
        }
        var rows = [["NODE", "ARCS_COMPARED", "ARCS_DIFFERING", "ROWS_PUSHED", "ROWS_PULLED", "DURATION"]]
        for node in nodes {
            do {
                let reply = try await repair(node, context: context)
                if cluster.json {
                    print(JSONLine.encode([
                        "node": node, "arcs_compared": reply.arcsCompared, "arcs_differing": reply.arcsDiffering,
                        "rows_pushed": Int(reply.rowsPushed), "rows_pulled": Int(reply.rowsPulled),
                        "duration_ms": Double(reply.durationMicros) / 1000,
                    ]))
                } else {
                    rows.append([node, "\(reply.arcsCompared)", "\(reply.arcsDiffering)", "\(reply.rowsPushed)", "\(reply.rowsPulled)",
                                 Self.duration(micros: reply.durationMicros)])
                }
            } catch {
                failed += 1
                printError("ringctl: cannot repair \(node): \(error)")
            }
        }
        if !cluster.json && rows.count > 1 { print(Table.render(rows), terminator: "") }
        if failed > 0 { throw ExitCode(1) }
    }

    private func repair(_ node: String, context: ClientContext) async throws(RingstoreError) -> RepairReport {
        let client = try AdminClient(context: context, service: .node(node), caller: cluster.caller, callTimeout: cluster.callTimeout)
        defer { client.close() }
        return try await client.repair(timeout: .seconds(passTimeout))
    }

    /// `850ms`, `12.3s`.
    static func duration(micros: UInt64) -> String {
        micros < 1_000_000 ? "\(micros / 1000)ms" : String(format: "%.1fs", Double(micros) / 1_000_000)
    }
}
