import ArgumentParser
import Foundation
import LockService
import Logging
import ServiceHost

@main
struct LockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringstore-lock",
        abstract: "Ringstore lock service: leases, FIFO waiters and fencing tokens.",
        discussion: """
            Tokens and holders are kept in <data-dir>/locks.sqlite (fsynced before a grant, a ttl change \
            or a release is answered). After a restart every holder keeps its lock with a fresh lease of \
            its ttl from the restart, so no second owner is granted while the first's lease could be live; \
            queued waiters are dropped (their requests fail at their deadline). A waiter also leaves \
            its queue when its client cancels it or its connection closes. A lock that is free with \
            no waiters is forgotten (its row deleted) --forget-after seconds after it became free; \
            tokens come from one durable counter for all locks, so a forgotten name's next token is \
            still higher than every token it had.
            """,
        version: Diagnostics.version
    )

    /// Options from flags, then RINGSTORE_* environment variables, then --config.
    static func main() async {
        await main(Configuration.processArguments(for: Self.self))
    }

    @Option(help: "PUB endpoint for lock events.")
    var publish = "tcp://127.0.0.1:7411"

    @Option(help: "Longest lease (and longest wait) a client may ask for, in seconds.")
    var maxTtl = 3600.0

    @Option(help: ArgumentHelp("Seconds a free lock with no waiters is remembered before it is forgotten.",
                               valueName: "seconds"))
    var forgetAfter = 3600.0

    @OptionGroup var replication: ReplicationOptions

    @OptionGroup var server: ServerOptions<LockDefaults>

    func validate() throws {
        try validateEndpoint(publish, option: "publish")
        guard maxTtl >= 0.001, maxTtl <= 86_400 * 7 else { throw ValidationError("--max-ttl must be between 0.001 and 604800 seconds") }
        guard forgetAfter.isFinite, forgetAfter >= 0, forgetAfter <= 86_400 * 365 else {
            throw ValidationError("--forget-after must be between 0 and 31536000 seconds")
        }
    }

    func run() async throws {
        try server.prepareProcess()
        let logger = Logger(label: "ringstore.lock")
        let maximum = Duration.milliseconds(Int64(maxTtl * 1000))
        var options = LockOptions(listen: server.listen, publish: publish, dataDirectory: server.dataDirectory,
                                  limits: LockLimits(maxTTL: maximum, maxWait: maximum),
                                  forgetAfter: .milliseconds(Int64((forgetAfter * 1000).rounded())))
        options.security = try server.security(logger: logger)
        options.operations = try server.operations()
        options.replication = replication.settings
        try await ServiceRunner.run([LockServer.service(options: options, logger: logger)], logger: logger)
    }
}

enum LockDefaults: ServiceDefaults {
    static let listen = "tcp://127.0.0.1:7410"
    static let dataDir = "lock-data"
    static let dataDirHelp = "Directory for the persisted tokens and holders."
}
