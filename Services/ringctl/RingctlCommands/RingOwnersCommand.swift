import ArgumentParser
import Ring
import RingstoreClient

/// `ringctl ring`: questions about the consistent-hash ring itself.
public struct RingCommand: AsyncParsableCommand {
    /// The `ring` command group and its subcommands.
    public static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "Inspect the consistent-hash ring.",
        subcommands: [RingOwnersCommand.self]
    )

    /// Creates the command group; ArgumentParser calls this.
    public init() {}
}

/// `ringctl ring owners`: the preference list (primary first) of each key, one line per key.
///
/// Without `--members` the ring is the live cluster's, fetched once from
/// placement. With `--members` the ring is built locally from the given
/// membership, so the command answers without a cluster. Either way it can
/// place millions of keys read from stdin in a second or so.
public struct RingOwnersCommand: AsyncParsableCommand {
    /// The command's name, help text and its description of the offline mode.
    public static let configuration = CommandConfiguration(
        commandName: "owners",
        abstract: "Print the replicas of keys: one line KEY OWNER1 OWNER2 ... per key.",
        discussion: """
            Live mode (no --members): the ring, its density and its replication factor \
            (the default for --replicas) come from the placement service.

            Offline mode: --members gives the membership as comma-separated host:port \
            entries, each optionally followed by =WEIGHT (an integer of at least 1, default 1), \
            e.g. --members 10.0.0.1:7501,10.0.0.2:7501=2. Each member gets DENSITY * WEIGHT \
            MD5 digests (4 points each) on the ring; the default density of 40 with weight 1 \
            places keys exactly as libketama and libmemcached's weighted Ketama mode do.

            With --stdin, keys are read one per line (LF or CRLF line ends) after any keys \
            given as arguments; a key is every byte of its line and is printed back unchanged. \
            Empty lines are skipped and reported on stderr, and the exit status is then 1.
            """
    )

    @Argument(help: "Keys to place, hashed as UTF-8.")
    var keys: [String] = []

    @Flag(help: "Read keys from standard input, one per line.")
    var stdin = false

    @Option(help: ArgumentHelp("Owners to print per key: the preference list length (default: the cluster's N, or 3 offline).", valueName: "n"))
    var replicas: Int?

    @Option(help: ArgumentHelp(
        "Place keys offline on these members: comma-separated host:port or host:port=WEIGHT.",
        valueName: "members"
    ))
    var members: String?

    @Option(help: ArgumentHelp("Digests per unit of weight, with --members (default 40, Ketama's).", valueName: "d"))
    var density: Int?

    @OptionGroup var cluster: ClusterOptions

    /// Creates the command with default options; ArgumentParser fills them in.
    public init() {}

    /// Refuses bad options before any work: replicas below 1, no keys, a bad membership.
    public func validate() throws {
        if let replicas, replicas < 1 { throw ValidationError("--replicas must be at least 1, not \(replicas)") }
        guard !keys.isEmpty || stdin else { throw ValidationError("give keys as arguments, or --stdin to read them") }
        guard !keys.contains(where: \.isEmpty) else { throw ValidationError("keys must not be empty") }
        guard members != nil else {
            if density != nil { throw ValidationError("--density applies only with --members") }
            return
        }
        _ = try makeRing()
    }

    /// Prints the owners of the argument keys, then of the keys on stdin.
    public func run() async throws {
        let (ring, clusterReplicas) = members == nil ? try await liveRing() : (try makeRing(), 3)
        var formatter = try OwnerLineFormatter(ring: ring, replicas: replicas ?? clusterReplicas)
        var output = OutputBuffer()
        for key in keys {
            var key = key
            try key.withUTF8 { try formatter.appendLine(forKey: UnsafeRawBufferPointer($0), to: &output.bytes) }
            try output.flushIfFull()
        }
        if stdin {
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { chunk.deallocate() }
            while true {
                let count = try StdIO.read(0, into: chunk)
                if count == 0 { break }
                formatter.consume(UnsafeRawBufferPointer(rebasing: chunk[..<count]), into: &output.bytes)
                try output.flushIfFull()
            }
            formatter.finish(into: &output.bytes)
        }
        try output.flush()
        if let line = formatter.firstEmptyLine {
            let count = formatter.emptyLineCount
            printError("ringctl: skipped \(count) empty line\(count == 1 ? "" : "s") on stdin (first: line \(line))")
            throw ExitCode(1)
        }
    }

    /// The live ring and replication factor, from placement.
    private func liveRing() async throws -> (HashRing, Int) {
        let context = try cluster.context()
        defer { context.shutdown() }
        let client = try PlacementClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller,
                                         callTimeout: cluster.callTimeout)
        defer { client.close() }
        let live: ClusterRing
        do {
            live = try await client.ring()
        } catch {
            printError("ringctl: cannot get the ring from \(ClusterEndpoints.describe(cluster.endpoints.placement)): \(error)")
            throw ExitCode(2)
        }
        guard let ring = live.ring else {
            printError("ringctl: the ring has no members yet (epoch \(live.epoch)); start nodes or use --members")
            throw ExitCode(2)
        }
        return (ring, live.replicas)
    }

    /// The ring of `--members`, with ring errors turned into usage errors.
    private func makeRing() throws -> HashRing {
        let entries = (members ?? "").split(separator: ",", omittingEmptySubsequences: false).map { entry in
            var entry = entry
            while entry.first == " " { entry.removeFirst() }
            while entry.last == " " { entry.removeLast() }
            return String(entry)
        }
        guard !entries.contains(where: \.isEmpty) else {
            throw ValidationError("--members: empty entry in \"\(members ?? "")\"; expected host:port[=weight],...")
        }
        do {
            let parsed = try entries.map { try RingMember(parsing: $0) }
            return try HashRing(members: parsed, density: density ?? HashRing.ketamaDensity)
        } catch let error as RingError {
            throw ValidationError("--members/--density: \(error)")
        }
    }

    /// Output collected in memory and written to fd 1 in large blocks.
    private struct OutputBuffer {
        static let blockSize = 1 << 20
        var bytes: [UInt8]

        init() {
            bytes = []
            bytes.reserveCapacity(Self.blockSize + 64 * 1024)
        }

        mutating func flushIfFull() throws {
            if bytes.count >= Self.blockSize { try flush() }
        }

        mutating func flush() throws {
            try bytes.withUnsafeBytes { try StdIO.write(1, $0) }
            bytes.removeAll(keepingCapacity: true)
        }
    }
}
