import ArgumentParser
import Foundation
import Logging
import RPC

/// What differs between the services in their common options: where they
/// listen and keep their data by default.
public protocol ServiceDefaults {
    /// The ROUTER endpoint of the local cluster's service.
    static var listen: String { get }
    /// The data directory, relative to the working directory.
    static var dataDir: String { get }
    /// What the data directory holds, for `--help`.
    static var dataDirHelp: String { get }
}

/// Options every server executable shares: its request endpoint, its data
/// directory and its log level. Checked before the service starts.
public struct ServerOptions<Defaults: ServiceDefaults>: ParsableArguments {
    @Option(help: "ROUTER endpoint for requests.")
    public var listen: String = Defaults.listen

    @Option(help: ArgumentHelp(Defaults.dataDirHelp, valueName: "data-dir"))
    public var dataDir: String = Defaults.dataDir

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error or critical.")
    public var logLevel: Logger.Level = .info

    public init() {}

    public func validate() throws {
        try validateEndpoint(listen, option: "listen")
        guard !dataDir.isEmpty else { throw ValidationError("--data-dir must not be empty") }
    }

    /// The data directory as a file URL.
    public var dataDirectory: URL { URL(fileURLWithPath: dataDir) }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Checks an endpoint option, throwing a `ValidationError` that names it.
public func validateEndpoint(_ endpoint: String, option: String) throws {
    if let problem = Endpoint.problem(with: endpoint) {
        throw ValidationError("--\(option): \(problem)")
    }
}
