import ArgumentParser
import Etcd

/// Where a control-plane service (placement, lock) keeps its state, and how
/// its replicas pick a leader: the options both executables share.
///
/// `embedded` (the default) is one process with its state under `--data-dir`,
/// as `make up` runs it. `etcd://HOST:PORT,...` keeps the state in etcd, so
/// several replicas of the service can run at once: one leads (it holds an
/// etcd lease on the election key), the others answer UNAVAILABLE naming it.
public struct ReplicationOptions: ParsableArguments {
    public init() {}

    @Option(help: ArgumentHelp("Where the service's state lives: embedded (files or SQLite under --data-dir; one process) or etcd://HOST:PORT,HOST:PORT,... (etcd's v3 API; several replicas share it and elect a leader).",
                               valueName: "store"))
    public var store = "embedded"

    @Option(help: ArgumentHelp("With an etcd store: the key prefix of this cluster's state, so several clusters can share one etcd.", valueName: "prefix"))
    public var etcdPrefix = "/ringstore"

    @Option(name: .customLong("leader-ttl"),
            help: ArgumentHelp("With an etcd store: seconds of the leader's etcd lease. A leader that stops renewing it (dead, paused, cut off) is replaced within about this long; etcd raises a value below its minimum (about 2).",
                               valueName: "seconds"))
    public var leaderTTL = 3

    @Option(help: ArgumentHelp("With an etcd store: the request endpoint clients reach this replica at, which followers name when they redirect (default: --listen).",
                               valueName: "endpoint"))
    public var advertise: String?

    public func validate() throws {
        if let endpoints = etcdEndpoints {
            do {
                _ = try EtcdClient(endpoints.joined(separator: ","))
            } catch {
                throw ValidationError("--store \(store): \(error)")
            }
        } else if store != "embedded" {
            throw ValidationError("--store must be 'embedded' or 'etcd://HOST:PORT[,HOST:PORT...]', not '\(store)'")
        }
        guard (1...3600).contains(leaderTTL) else { throw ValidationError("--leader-ttl must be 1...3600 seconds") }
        guard etcdPrefix.hasPrefix("/"), !etcdPrefix.hasSuffix("/") || etcdPrefix == "/" else {
            throw ValidationError("--etcd-prefix must start with '/' and not end with one, e.g. /ringstore")
        }
        if let advertise { try validateEndpoint(advertise, option: "advertise") }
    }

    /// The etcd members `--store` names; nil for the embedded store.
    public var etcdEndpoints: [String]? {
        guard store.hasPrefix("etcd://") else { return nil }
        return store.dropFirst("etcd://".count).split(separator: ",").map { String($0) }
    }
}

/// The replication options as the services take them.
public struct ReplicationSettings: Sendable, Equatable {
    /// The etcd members (`host:port`); nil for the embedded store.
    public var etcd: [String]?
    /// The key prefix of this cluster's state in etcd.
    public var prefix: String
    /// Seconds of the leader's lease.
    public var leaderTTL: Int
    /// The endpoint followers name as this replica's when it leads (nil: its listen endpoint).
    public var advertise: String?

    public init(etcd: [String]? = nil, prefix: String = "/ringstore", leaderTTL: Int = 3, advertise: String? = nil) {
        self.etcd = etcd
        self.prefix = prefix
        self.leaderTTL = leaderTTL
        self.advertise = advertise
    }

    /// One process, its state under its data directory.
    public static let embedded = ReplicationSettings()
}

extension ReplicationOptions {
    /// The settings these options give.
    public var settings: ReplicationSettings {
        ReplicationSettings(etcd: etcdEndpoints, prefix: etcdPrefix, leaderTTL: leaderTTL, advertise: advertise)
    }
}
