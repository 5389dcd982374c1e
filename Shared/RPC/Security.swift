import Basics
import Foundation
import Synchronization
import ZeroMQ

/// A client's CURVE credentials for one server: its own keypair and the
/// server's public key (a client talks only to the server holding it).
public struct ClientSecurity: Sendable, Equatable {
    public let keys: CurveKeyPair
    public let serverKey: CurveKey

    public init(keys: CurveKeyPair, serverKey: CurveKey) {
        self.keys = keys
        self.serverKey = serverKey
    }

    /// Sets CURVE up on a socket before it connects.
    func apply(to socket: ZMQSocket) throws(ZMQError) {
        try socket.setCurveClient(keys, server: serverKey)
    }
}

/// The allowlist a service enforces now; replaced on reload (SIGHUP) while
/// the reactor reads it, so it sits behind a lock.
public final class AllowlistSource: Sendable {
    private let current: Mutex<Allowlist>

    public init(_ allowlist: Allowlist) {
        current = Mutex(allowlist)
    }

    public var allowlist: Allowlist { current.withLock { $0 } }

    /// Replaces the allowlist: new handshakes and every request from then on
    /// are judged by it. Returns the keys it no longer lists.
    @discardableResult
    public func replace(_ allowlist: Allowlist) -> Set<CurveKey> {
        current.withLock { current in
            let removed = Set(current.entries.keys).subtracting(allowlist.entries.keys)
            current = allowlist
            return removed
        }
    }
}

/// CURVE on every server socket of one reactor (its RPC ROUTER, its event
/// PUB): the service's keypair, the allowlist, and the context's ZAP handler,
/// which must exist once per context.
public final class ServerSecurity {
    public let keys: CurveKeyPair
    public let allowlist: AllowlistSource
    private let zap: ZAPHandler
    private let reactor: ReactorHandle
    /// Kept alive with the server: SIGHUP reloads while it exists.
    var reloadSignal: AllowlistReloader?
    private var revocationHandlers: [(Set<CurveKey>) -> Void] = []

    /// Starts the ZAP handler of `reactor`'s context.
    public init(reactor: Reactor, keys: CurveKeyPair, allowlist: AllowlistSource) throws(ZMQError) {
        self.keys = keys
        self.allowlist = allowlist
        self.reactor = reactor.handle
        zap = try ZAPHandler(reactor: reactor) { allowlist.allowlist }
    }

    /// Calls `handler` on the reactor thread with the keys a reload took off
    /// the allowlist (the sockets close those keys' open connections).
    func onRevoked(_ handler: @escaping (Set<CurveKey>) -> Void) {
        revocationHandlers.append(handler)
    }

    /// Replaces the allowlist; when keys were removed, the revocation
    /// handlers run on the reactor thread.
    public func replace(_ list: Allowlist) {
        Self.replace(list, in: allowlist, security: ReactorBound(self, on: reactor))
    }

    /// `replace` from any thread (the SIGHUP reloader's): it touches only
    /// Sendable parts here, and the server itself only on its reactor thread.
    private static func replace(_ list: Allowlist, in source: AllowlistSource, security: ReactorBound<ServerSecurity>) {
        let removed = source.replace(list)
        guard !removed.isEmpty else { return }
        security.post { security in
            for handler in security.revocationHandlers { handler(removed) }
        }
    }

    /// Makes `socket` a CURVE server authenticated by this ZAP handler; before `bind`.
    func apply(to socket: ZMQSocket) throws(ZMQError) {
        try socket.setCurveServer(keys)
        try socket.setZAPDomain("ringstore")
    }
}

/// A service's CURVE settings, read from its key files at start: the
/// cluster's server keypair (every service's sockets present it, and clients
/// know its public key), the allowlist file, and, for a service that calls
/// others (a storage node), its own keypair as a client.
public struct SecuritySettings: Sendable {
    public let serverKeys: CurveKeyPair
    public let allowlistFile: URL
    public let allowlist: Allowlist
    public let clientKeys: CurveKeyPair?

    public init(serverKeys: CurveKeyPair, allowlistFile: URL, allowlist: Allowlist, clientKeys: CurveKeyPair?) {
        self.serverKeys = serverKeys
        self.allowlistFile = allowlistFile
        self.allowlist = allowlist
        self.clientKeys = clientKeys
    }

    /// Reads the files; throws a message naming the file that is wrong.
    public static func load(serverKey: URL, allowlist: URL, clientKey: URL?) throws(KeyFileError) -> SecuritySettings {
        let serverKeys = try KeyFiles.readPair(serverKey)
        let list = try readAllowlist(allowlist)
        return SecuritySettings(serverKeys: serverKeys, allowlistFile: allowlist, allowlist: list,
                                clientKeys: try clientKey.map { (path: URL) throws(KeyFileError) in try KeyFiles.readPair(path) })
    }

    /// The allowlist in `path`.
    public static func readAllowlist(_ path: URL) throws(KeyFileError) -> Allowlist {
        let text = try KeyFiles.read(path)
        do {
            return try Allowlist(parsing: text)
        } catch {
            throw KeyFileError("\(path.path): \(error)")
        }
    }

    /// How this service talks to the others (nil without a client keypair).
    public var clientSecurity: ClientSecurity? {
        clientKeys.map { ClientSecurity(keys: $0, serverKey: serverKeys.publicKey) }
    }
}

extension ServerSecurity {
    /// CURVE for `reactor`'s sockets from `settings`; SIGHUP re-reads the
    /// allowlist file (a broken file is logged and the old list kept).
    public convenience init(reactor: Reactor, settings: SecuritySettings) throws {
        try self.init(reactor: reactor, keys: settings.serverKeys, allowlist: AllowlistSource(settings.allowlist))
        let security = ReactorBound(self, on: reactor)
        let source = allowlist
        let logger = reactor.logger
        let file = settings.allowlistFile
        reloadSignal = try AllowlistReloader(file: file) { result in
            switch result {
            case .success(let list):
                Self.replace(list, in: source, security: security)
                logger.notice("security.allowlist.reloaded", metadata: ["security.allowlist": "\(file.path)", "security.keys": "\(list.entries.count)"])
            case .failure(let error):
                logger.error("security.allowlist.reload_failed", metadata: ["security.error": "\(error)"])
            }
        }
    }
}

/// Re-reads an allowlist file on SIGHUP, on the signal thread.
final class AllowlistReloader {
    private let watch: SignalWatch

    init(file: URL, apply: @escaping @Sendable (Result<Allowlist, KeyFileError>) -> Void) throws(SignalWatchError) {
        watch = try SignalWatch([SIGHUP]) { _ in
            apply(Result { () throws(KeyFileError) in try SecuritySettings.readAllowlist(file) })
        }
    }

    deinit { watch.cancel() }
}
