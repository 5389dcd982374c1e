import Basics
import Foundation
import Logging
import RESP
import RPC
import RingProtocol
import ServiceHost

/// Redis's protocol in front of the node's coordinator: any Redis client,
/// redis-cli and redis-benchmark talk to Ringstore, with replication, quorums
/// and migration behind them exactly as on the ZeroMQ path (this node
/// coordinates; N from the ring, W and R the node's defaults).
///
/// Session commands and server information are here; the data commands in
/// RESPFrontDoor+Data.swift. Everything runs on the node's reactor thread.
final class RESPFrontDoor {
    /// What the front door reports about the node (INFO, HELLO, DBSIZE).
    struct NodeFacts {
        var address: () -> String
        /// Members of the ring this node routes by, N, the ring epoch, and
        /// the W and R of requests that set none (the ring's).
        var ring: () -> (members: [String], replicas: Int, epoch: UInt64, defaultW: Int, defaultR: Int)
        /// Live keys on this node, and how to ask a peer for its count.
        var localKeys: () -> Int
        var peerKeys: (_ address: String, _ done: @escaping (Int?) -> Void) -> Void
    }

    let listener: RESPListener
    let coordinator: Coordinator
    let facts: NodeFacts
    let logger: Logger
    private let passwords: RESPPasswords?
    private let started = ContinuousClock.now
    var commandsProcessed = 0

    init(reactor: Reactor, listen: String, coordinator: Coordinator, facts: NodeFacts, passwords: RESPPasswords?,
         maxValueBytes: Int, logger: Logger) throws {
        self.coordinator = coordinator
        self.facts = facts
        self.passwords = passwords
        self.logger = logger
        let bulk = maxValueBytes + (64 << 10)
        listener = try RESPListener(reactor: reactor, listen: listen, logger: logger) {
            RESPParser(maxBulkBytes: bulk, maxCommandBytes: max(64 << 20, 4 * bulk))
        }
        listener.execute = { [unowned self] connection, arguments in execute(connection, arguments) }
        passwords?.onRevoked = { [unowned self] revoked in listener.drop(where: { $0.authenticated.map { revoked.contains($0.name) } ?? false },
                                                                          reason: "its password was removed") }
        logger.notice("resp.listening", metadata: ["resp.address": "\(listener.address)",
                                                    "resp.auth": "\(passwords == nil ? "none (--insecure)" : "required")"])
    }

    func shutdown() { listener.shutdown() }

    // MARK: Dispatch

    private func execute(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        commandsProcessed += 1
        let name = String(decoding: arguments[0], as: UTF8.self).uppercased()
        let rest = Array(arguments.dropFirst())
        let command = Self.commands[name]
        if passwords != nil, connection.authenticated == nil, !(command?.flags.contains("noauth") ?? false) {
            connection.reply { $0.error("NOAUTH Authentication required.") }
            return
        }
        guard let command else {
            let shown = rest.prefix(3).map { "'\(Self.text($0).prefix(64))' " }.joined()
            connection.reply { $0.error("ERR unknown command '\(Self.text(arguments[0]).prefix(128))', with args beginning with: \(shown)") }
            return
        }
        guard command.arity >= 0 ? rest.count + 1 == command.arity : rest.count + 1 >= -command.arity else {
            connection.reply { $0.error("ERR wrong number of arguments for '\(name.lowercased())' command") }
            return
        }
        command.run(self, connection, rest)
    }

    func ping(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        connection.reply { writer in
            if let message = arguments.first { writer.bulk(message) } else { writer.simple("PONG") }
        }
    }

    func quit(_ connection: RESPConnection) {
        connection.reply { $0.simple("OK") }
        connection.closing = true
    }

    func select(_ connection: RESPConnection, _ index: [UInt8]) {
        connection.reply { Self.text(index) == "0" ? $0.simple("OK") : $0.error("ERR DB index is out of range") }
    }

    // MARK: Session

    func auth(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        guard arguments.count <= 2 else {
            connection.reply { $0.error("ERR syntax error") }
            return
        }
        guard let passwords else {
            connection.reply { $0.error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?") }
            return
        }
        let user = arguments.count == 2 ? Self.text(arguments[0]) : nil
        guard let entry = passwords.check(user: user, password: arguments[arguments.count - 1]) else {
            logger.notice("resp.auth.refused", metadata: ["resp.peer": "\(connection.peer)"])
            connection.reply { $0.error("WRONGPASS invalid username-password pair or user is disabled.") }
            return
        }
        connection.authenticated = entry
        connection.reply { $0.simple("OK") }
    }

    /// HELLO [protover [AUTH username password] [SETNAME clientname]]
    func hello(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        var index = 0
        var version = connection.protocolVersion
        if let first = arguments.first {
            guard let asked = Int(Self.text(first)) else {
                connection.reply { $0.error("ERR Protocol version is not an integer or out of range") }
                return
            }
            guard asked == 2 || asked == 3 else {
                connection.reply { $0.error("NOPROTO unsupported protocol version") }
                return
            }
            version = asked
            index = 1
        }
        var name: String?
        while index < arguments.count {
            let option = Self.text(arguments[index]).uppercased()
            if option == "AUTH", index + 2 < arguments.count {
                guard let passwords, let entry = passwords.check(user: Self.text(arguments[index + 1]), password: arguments[index + 2]) else {
                    connection.reply { $0.error(self.passwords == nil ? "ERR AUTH called without any password configured"
                                                                      : "WRONGPASS invalid username-password pair or user is disabled.") }
                    return
                }
                connection.authenticated = entry
                index += 3
            } else if option == "SETNAME", index + 1 < arguments.count {
                name = Self.text(arguments[index + 1])
                index += 2
            } else {
                connection.reply { $0.error("ERR Syntax error in HELLO option '\(option.lowercased())'") }
                return
            }
        }
        if passwords != nil && connection.authenticated == nil {
            connection.reply { $0.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time") }
            return
        }
        if let name { connection.name = name }
        connection.protocolVersion = version
        connection.reply { writer in
            writer.mapHeader(7)
            writer.bulk("server"); writer.bulk("redis")
            writer.bulk("version"); writer.bulk(Self.redisVersion)
            writer.bulk("proto"); writer.integer(version)
            writer.bulk("id"); writer.integer(Int(connection.id))
            writer.bulk("mode"); writer.bulk("standalone")
            writer.bulk("role"); writer.bulk("master")
            writer.bulk("modules"); writer.arrayHeader(0)
        }
    }

    /// CONFIG GET: the few parameters tools read (redis-benchmark asks for
    /// `save` and `appendonly`); Ringstore is configured by its flags, so
    /// CONFIG SET is refused.
    func config(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        guard Self.text(arguments[0]).uppercased() == "GET", arguments.count >= 2 else {
            connection.reply { $0.error("ERR CONFIG \(Self.text(arguments[0]).uppercased()) is not supported: Ringstore is configured by its command-line options") }
            return
        }
        // Every commit is fsynced (with --sync full): the closest Redis terms.
        let known = [("save", ""), ("appendonly", "yes"), ("appendfsync", "always"), ("databases", "1")]
        let patterns = arguments.dropFirst().map { Self.text($0).lowercased() }
        let chosen = known.filter { name, _ in patterns.contains { $0 == name || $0 == "*" } }
        connection.reply { writer in
            writer.mapHeader(chosen.count)
            for (name, value) in chosen { writer.bulk(name); writer.bulk(value) }
        }
    }

    func client(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        let sub = Self.text(arguments[0]).uppercased()
        switch (sub, arguments.count) {
        case ("SETNAME", 2):
            let name = Self.text(arguments[1])
            guard !name.contains(where: { $0 == " " || $0 == "\n" || $0 == "\r" }) else {
                connection.reply { $0.error("ERR Client names cannot contain spaces, newlines or special characters.") }
                return
            }
            connection.name = name
            connection.reply { $0.simple("OK") }
        case ("GETNAME", 1):
            connection.reply { connection.name.isEmpty ? $0.null() : $0.bulk(connection.name) }
        case ("ID", 1):
            connection.reply { $0.integer(Int(connection.id)) }
        case ("SETINFO", 3):
            // Client libraries (redis-py, go-redis) announce themselves; nothing to keep.
            connection.reply { $0.simple("OK") }
        default:
            connection.reply { $0.error("ERR unknown subcommand or wrong number of arguments for '\(sub.lowercased())'. Try CLIENT HELP.") }
        }
    }

    // MARK: Server information

    /// The Redis version clients are told: the commands served behave as
    /// Redis 7.0's (clients pick features by it).
    static let redisVersion = "7.0.0"

    func info(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        let asked = Set(arguments.map { Self.text($0).lowercased() })
        let all = asked.isEmpty || asked.contains("all") || asked.contains("everything") || asked.contains("default")
        let ring = facts.ring()
        var sections: [(String, [(String, String)])] = []
        if all || asked.contains("server") {
            sections.append(("Server", [
                ("redis_version", Self.redisVersion), ("ringstore_version", Diagnostics.version), ("redis_mode", "standalone"),
                ("os", "Linux"), ("process_id", "\(ProcessInfo.processInfo.processIdentifier)"),
                ("tcp_port", listener.address.split(separator: ":").last.map(String.init) ?? ""),
                ("uptime_in_seconds", "\((ContinuousClock.now - started).components.seconds)"),
                ("ringstore_node", facts.address()),
            ]))
        }
        if all || asked.contains("clients") {
            sections.append(("Clients", [("connected_clients", "\(listener.clientCount)"),
                                         ("total_connections_received", "\(listener.acceptedTotal)"),
                                         ("maxclients", "\(listener.limits.maxClients)")]))
        }
        if all || asked.contains("replication") {
            sections.append(("Replication", [
                ("role", "master"), ("connected_slaves", "0"),
                ("ringstore_ring_members", ring.members.joined(separator: ",")), ("ringstore_ring_epoch", "\(ring.epoch)"),
                ("ringstore_n", "\(ring.replicas)"), ("ringstore_w", "\(ring.defaultW)"), ("ringstore_r", "\(ring.defaultR)"),
            ]))
        }
        if all || asked.contains("stats") {
            sections.append(("Stats", [("total_commands_processed", "\(commandsProcessed)")]))
        }
        let keyspace = all || asked.contains("keyspace")
        let render = { [sections] (keys: Int?) -> [UInt8] in
            var text = sections.map { name, fields in "# \(name)\r\n" + fields.map { "\($0):\($1)\r\n" }.joined() }
            if let keys { text.append("# Keyspace\r\n" + (keys > 0 ? "db0:keys=\(keys),expires=0,avg_ttl=0\r\n" : "")) }
            return connection.encode { $0.bulk(text.joined(separator: "\r\n")) }
        }
        guard keyspace else {
            connection.reply { $0.raw(render(nil)) }
            return
        }
        let slot = connection.reserve()
        estimateKeys { keys in connection.complete(slot, render(keys)) }
    }

    /// DBSIZE: live keys over the ring's members (each node's own count)
    /// divided by N, as the nodes count them now: approximate while writes,
    /// hints or migrations are in flight, and while a member is unreachable.
    func dbsize(_ connection: RESPConnection) {
        let slot = connection.reserve()
        estimateKeys { keys in connection.complete(slot, connection.encode { $0.integer(keys) }) }
    }

    private func estimateKeys(_ done: @escaping (Int) -> Void) {
        let ring = facts.ring()
        let me = facts.address()
        var total = facts.localKeys()
        let peers = ring.members.filter { $0 != me }
        var waiting = peers.count
        let replicas = max(1, min(ring.replicas, max(1, ring.members.count)))
        guard waiting > 0 else {
            done(total / replicas)
            return
        }
        for peer in peers {
            facts.peerKeys(peer) { keys in
                total += keys ?? 0
                waiting -= 1
                if waiting == 0 { done((total + replicas - 1) / replicas) }
            }
        }
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
