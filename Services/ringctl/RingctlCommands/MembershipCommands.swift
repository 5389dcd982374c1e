import ArgumentParser
import RingstoreClient

/// A placement client for one command invocation.
struct PlacementSession {
    let context: ClientContext
    let client: PlacementClient

    init(_ cluster: ClusterOptions) throws {
        context = try cluster.context()
        client = try PlacementClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller, callTimeout: cluster.callTimeout)
    }

    /// Calls placement; a failure is printed to stderr and ends the command with exit 1.
    func call<Response>(what: String, _ body: (PlacementClient) async throws(RingstoreError) -> Response) async throws -> Response {
        do {
            return try await body(client)
        } catch {
            printError("ringctl: \(what): \(error)")
            throw ExitCode(1)
        }
    }

    func close() {
        client.close()
        context.shutdown()
    }
}

/// `ringctl members`: the cluster's members with state, weight and epoch.
struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members",
        abstract: "List the cluster's members: address, state, weight, the epoch of their last state change, and whether they caught up since their start.",
        discussion: "CAUGHT_UP is no while a (re)started node waits for the hints others hold for it or runs its first anti-entropy pass."
    )

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let session = try PlacementSession(cluster)
        defer { session.close() }
        let reply = try await session.call(what: "cannot list members") { client throws(RingstoreError) in try await client.members() }
        if cluster.json {
            for member in reply.members {
                print(JSONLine.encode([
                    "address": member.address, "state": member.state.rawValue, "weight": member.weight,
                    "epoch": Int(member.stateEpoch), "cluster_epoch": Int(reply.epoch),
                    "since": Timestamp.iso8601(micros: member.stateSinceUnixMicros), "caught_up": member.caughtUp,
                ]))
            }
            return
        }
        var rows = [["ADDRESS", "STATE", "WEIGHT", "EPOCH", "CAUGHT_UP", "SINCE"]]
        for member in reply.members {
            rows.append([member.address, member.state.rawValue, "\(member.weight)", "\(member.stateEpoch)", member.caughtUp ? "yes" : "no",
                         Timestamp.iso8601(micros: member.stateSinceUnixMicros)])
        }
        print(Table.render(rows), terminator: "")
    }
}

/// `ringctl join|leave|remove ADDRESS`.
struct JoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "join", abstract: "Add a member to the cluster (nodes also join by themselves when they start).")

    @Argument(help: "The member's address, host:port.") var address: String
    @Option(help: "The member's weight on the ring (1...1000).") var weight = 1
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        guard (1...1000).contains(weight) else { throw ValidationError("--weight must be 1...1000") }
    }

    func run() async throws {
        let session = try PlacementSession(cluster)
        defer { session.close() }
        let (address, weight) = (address, weight)
        let epoch = try await session.call(what: "cannot join \(address)") { client throws(RingstoreError) in
            try await client.join(address, weight: weight)
        }
        print("joined \(address) at epoch \(epoch)")
    }
}

struct LeaveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leave",
        abstract: "Start a graceful leave: the member leaves the ring, hands its arcs off, then is removed.")

    @Argument(help: "The member's address, host:port.") var address: String
    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let session = try PlacementSession(cluster)
        defer { session.close() }
        let address = address
        let epoch = try await session.call(what: "cannot start the leave of \(address)") { client throws(RingstoreError) in
            try await client.leave(address)
        }
        print("\(address) is leaving at epoch \(epoch)")
    }
}

struct RemoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove a member at once (a dead one); the survivors rebuild its replicas.",
        discussion: """
            Placement refuses a member that is up: take a live member out with `leave`, which hands its \
            arcs off first. --force removes it anyway (its data is then rebuilt from the other replicas \
            only, and the node learns at its next heartbeat that it is no longer a member).
            """)

    @Argument(help: "The member's address, host:port.") var address: String
    @Flag(help: "Remove the member even though placement sees it up.") var force = false
    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        let session = try PlacementSession(cluster)
        defer { session.close() }
        let (address, force) = (address, force)
        let epoch = try await session.call(what: "cannot remove \(address)") { client throws(RingstoreError) in
            try await client.remove(address, force: force)
        }
        print("removed \(address) at epoch \(epoch)")
    }
}
