import ArgumentParser
import RingstoreClient

/// `--w` and `--n` of the writing commands.
struct WriteQuorumOptions: ParsableArguments {
    @Option(name: .customLong("w"), help: ArgumentHelp("Acknowledgements to wait for (default: the cluster's W).", valueName: "n"))
    var w: Int?
    @Option(name: .customLong("n"), help: ArgumentHelp("Replicas of the key (default: the cluster's N).", valueName: "n"))
    var n: Int?

    func validate() throws {
        try QuorumValue.validate(w, name: "--w")
        try QuorumValue.validate(n, name: "--n")
        if let w, let n, w > n { throw ValidationError("--w \(w) exceeds --n \(n)") }
    }

    var quorum: Quorum { Quorum(n: n, w: w) }
}

/// `--stdin` and `--concurrency` of the bulk modes.
struct BulkOptions: ParsableArguments {
    @Flag(help: "Read requests from standard input, one per line.") var stdin = false
    @Option(help: ArgumentHelp("Requests in flight with --stdin (1...4096).", valueName: "n")) var concurrency = 64

    func validate() throws {
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1...4096") }
    }

    /// The positional arguments must all be given, or, with `--stdin`, none.
    func validate(arguments: [String?], names: String) throws {
        if stdin {
            guard arguments.allSatisfy({ $0 == nil }) else { throw ValidationError("give \(names) or --stdin, not both") }
        } else {
            guard arguments.allSatisfy({ $0 != nil }) else { throw ValidationError("give \(names), or --stdin to read them") }
            guard arguments.first??.isEmpty == false else { throw ValidationError("KEY must not be empty") }
        }
    }
}

/// Checks one `--n`, `--w` or `--r` value.
enum QuorumValue {
    static let range = 1...16

    static func validate(_ value: Int?, name: String) throws {
        if let value, !range.contains(value) { throw ValidationError("\(name) must be \(range.lowerBound)...\(range.upperBound), not \(value)") }
    }
}

/// A data client for one command invocation.
struct DataSession {
    let context: ClientContext
    let client: KeyValueClient

    init(_ cluster: ClusterOptions) throws {
        context = try cluster.context()
        client = try KeyValueClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller,
                                    configuration: .init(timeout: cluster.callTimeout))
    }

    func close() {
        client.close()
        context.shutdown()
    }
}
