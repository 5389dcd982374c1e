import ArgumentParser
import Logging
import RPC

/// Options every server executable shares.
public struct ServerOptions: ParsableArguments {
    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error or critical.")
    public var logLevel: Logger.Level = .info

    public init() {}
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Checks an endpoint option, throwing a `ValidationError` that names it.
public func validateEndpoint(_ endpoint: String, option: String) throws {
    if let problem = Endpoint.problem(with: endpoint) {
        throw ValidationError("--\(option): \(problem)")
    }
}
