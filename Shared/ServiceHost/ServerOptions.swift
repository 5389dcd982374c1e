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
/// directory, its logs, its keys and its config file. Checked before the
/// service starts.
public struct ServerOptions<Defaults: ServiceDefaults>: ParsableArguments {
    @Option(help: "ROUTER endpoint for requests.")
    public var listen: String = Defaults.listen

    @Option(help: ArgumentHelp(Defaults.dataDirHelp, valueName: "data-dir"))
    public var dataDir: String = Defaults.dataDir

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error or critical.")
    public var logLevel: Logger.Level = .info

    @Option(help: "Log lines as text (key=value) or json (one object per line).")
    public var logFormat: LogFormat = .text

    @Option(help: ArgumentHelp("Read options from this file: flat TOML, one option-name = value per line. Flags and RINGSTORE_* environment variables win over it (env: RINGSTORE_CONFIG).",
                               valueName: "file"))
    public var config: String?

    @Option(help: ArgumentHelp("CURVE: the cluster's server keypair (a .secret file from `ringctl keygen`); with --allowlist, every socket is encrypted and only listed keys connect.",
                               valueName: "file"))
    public var serverKey: String?

    @Option(help: ArgumentHelp("CURVE: the allowlist (ROLE PUBLIC-KEY [NAME] per line; roles client, node, admin); re-read on SIGHUP.",
                               valueName: "file"))
    public var allowlist: String?

    @Flag(help: "Run without CURVE, for a throwaway cluster: anyone who reaches a port can use it.")
    public var insecure = false

    @Option(help: ArgumentHelp("Serve the operations port on HOST:PORT: /healthz, /readyz, /metrics (Prometheus) and, on placement, the status page. Off when absent.",
                               valueName: "host:port"))
    public var httpListen: String?

    @Option(help: ArgumentHelp("The operations port's token, a secret file (mode 0600): every path but /healthz and /readyz then needs it, as a bearer token or the password of HTTP Basic. Without one the port must be on a loopback address (or pass --insecure).",
                               valueName: "file"))
    public var httpToken: String?

    public init() {}

    public func validate() throws {
        try validateEndpoint(listen, option: "listen")
        guard !dataDir.isEmpty else { throw ValidationError("--data-dir must not be empty") }
        if insecure && (serverKey != nil || allowlist != nil) {
            throw ValidationError("--insecure excludes --server-key and --allowlist")
        }
        if (serverKey == nil) != (allowlist == nil) {
            throw ValidationError("--server-key and --allowlist go together")
        }
        if let httpListen {
            guard httpListen.contains(":"), UInt16(httpListen.split(separator: ":").last ?? "") != nil else {
                throw ValidationError("--http-listen: '\(httpListen)' is not HOST:PORT")
            }
            if httpToken == nil && !insecure && !ListeningSocket.isLoopback(httpListen) {
                throw ValidationError("--http-listen \(httpListen) is not a loopback address: give the port a token with --http-token FILE " +
                                      "(or pass --insecure), since the metrics and the status page describe the cluster")
            }
        } else if httpToken != nil {
            throw ValidationError("--http-token needs --http-listen")
        }
        // Nothing runs open by accident: no keys is an error unless asked for.
        if !insecure && serverKey == nil {
            throw ValidationError("no CURVE keys: pass --server-key and --allowlist (`make up` makes them under .run/keys), " +
                                  "or --insecure for a throwaway cluster that anyone who reaches its ports can use")
        }
    }

    /// The CURVE settings the options name, read from their files; nil with
    /// --insecure (which `validate` requires without keys), with a warning.
    /// `clientKey` is the service's own keypair for the calls it makes.
    public func security(clientKey: String? = nil, logger: Logger) throws -> SecuritySettings? {
        guard let serverKey, let allowlist else {
            logger.warning("security.off", metadata: ["security.reason": "--insecure",
                                                      "security.note": "no CURVE: anyone who reaches this port can use it"])
            return nil
        }
        do {
            return try SecuritySettings.load(serverKey: URL(fileURLWithPath: serverKey), allowlist: URL(fileURLWithPath: allowlist),
                                             clientKey: clientKey.map { URL(fileURLWithPath: $0) })
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// Sets up the process's logging (and its SIGHUP handling) and its
    /// metrics: first thing in `run()`.
    public func prepareProcess() throws {
        try ServiceRunner.prepare(logLevel: logLevel, format: logFormat)
        ServiceMetrics.bootstrap()
    }

    /// The operations port's settings, its token read from its file; nil without --http-listen.
    public func operations() throws -> OperationsSettings? {
        guard let httpListen else { return nil }
        var token: String?
        if let httpToken {
            do {
                token = try KeyFiles.readSecret(URL(fileURLWithPath: httpToken)).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                throw ValidationError("--http-token: \(error)")
            }
            guard let read = token, read.utf8.count >= 16 else {
                throw ValidationError("--http-token \(httpToken): the token needs at least 16 characters")
            }
        }
        return OperationsSettings(listen: httpListen, token: token)
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
