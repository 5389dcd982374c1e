import Foundation
import RESP

/// The commands the RESP front door serves: one table of what each is
/// (Redis's arity, flags, key positions, documentation, for COMMAND and
/// redis-cli's hints) and the method that runs it, looked up once per command.
extension RESPFrontDoor {
    // MARK: The command table

    struct Command {
        /// Redis's arity: the exact argument count with the name, or minus the least.
        let arity: Int
        let flags: [String]
        let keys: (first: Int, last: Int, step: Int)
        let group: String
        let since: String
        let summary: String
        let arguments: [String]
        /// Runs the command with its arguments (the name taken off), once
        /// authentication and arity are checked.
        let run: @Sendable (RESPFrontDoor, RESPConnection, [[UInt8]]) -> Void
    }

    static let commands: [String: Command] = [
        "PING": Command(arity: -1, flags: ["fast"], keys: (0, 0, 0), group: "connection", since: "1.0.0",
                        summary: "Returns the server's liveliness response.", arguments: ["[message]"],
                        run: { $0.ping($1, $2) }),
        "ECHO": Command(arity: 2, flags: ["fast"], keys: (0, 0, 0), group: "connection", since: "1.0.0",
                        summary: "Returns the given string.", arguments: ["message"],
                        run: { _, connection, arguments in connection.reply { $0.bulk(arguments[0]) } }),
        "HELLO": Command(arity: -1, flags: ["noauth", "fast"], keys: (0, 0, 0), group: "connection", since: "6.0.0",
                         summary: "Handshakes with the server: protocol version, AUTH, SETNAME.", arguments: ["[protover]"],
                         run: { $0.hello($1, $2) }),
        "QUIT": Command(arity: -1, flags: ["noauth", "fast"], keys: (0, 0, 0), group: "connection", since: "1.0.0",
                        summary: "Closes the connection.", arguments: [],
                        run: { door, connection, _ in door.quit(connection) }),
        "SELECT": Command(arity: 2, flags: ["fast"], keys: (0, 0, 0), group: "connection", since: "1.0.0",
                          summary: "Selects database 0, the only one.", arguments: ["index"],
                          run: { $0.select($1, $2[0]) }),
        "AUTH": Command(arity: -2, flags: ["noauth", "fast"], keys: (0, 0, 0), group: "connection", since: "1.0.0",
                        summary: "Authenticates the connection with a password from the node's password file.",
                        arguments: ["[username]", "password"],
                        run: { $0.auth($1, $2) }),
        "CLIENT": Command(arity: -2, flags: [], keys: (0, 0, 0), group: "connection", since: "2.4.0",
                          summary: "SETNAME, GETNAME, ID.", arguments: ["subcommand", "[argument...]"],
                          run: { $0.client($1, $2) }),
        "COMMAND": Command(arity: -1, flags: [], keys: (0, 0, 0), group: "server", since: "2.8.13",
                           summary: "Details about the commands served.", arguments: ["[subcommand]", "[name...]"],
                           run: { $0.commandInfo($1, $2) }),
        "INFO": Command(arity: -1, flags: [], keys: (0, 0, 0), group: "server", since: "1.0.0",
                        summary: "Server, clients, replication (the ring, N, W, R) and keyspace.", arguments: ["[section...]"],
                        run: { $0.info($1, $2) }),
        "CONFIG": Command(arity: -2, flags: [], keys: (0, 0, 0), group: "server", since: "2.0.0",
                          summary: "CONFIG GET of save, appendonly, appendfsync, databases.", arguments: ["subcommand", "[parameter...]"],
                          run: { $0.config($1, $2) }),
        "DBSIZE": Command(arity: 1, flags: ["readonly"], keys: (0, 0, 0), group: "server", since: "1.0.0",
                          summary: "Approximate number of keys: the members' live keys over N.", arguments: [],
                          run: { door, connection, _ in door.dbsize(connection) }),
        "GET": Command(arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "string", since: "1.0.0",
                       summary: "Quorum read of a key's value.", arguments: ["key"],
                       run: { $0.get($1, $2[0]) }),
        "SET": Command(arity: -3, flags: ["write"], keys: (1, 1, 1), group: "string", since: "1.0.0",
                       summary: "Quorum write; NX and XX are conditional puts, GET returns the old value.",
                       arguments: ["key", "value", "[NX|XX]", "[GET]"],
                       run: { $0.set($1, $2) }),
        "DEL": Command(arity: -2, flags: ["write"], keys: (1, -1, 1), group: "generic", since: "1.0.0",
                       summary: "Deletes keys; the count of those that existed.", arguments: ["key...", "[key...]"],
                       run: { $0.delete($1, $2) }),
        "EXISTS": Command(arity: -2, flags: ["readonly", "fast"], keys: (1, -1, 1), group: "generic", since: "1.0.0",
                          summary: "How many of the keys exist.", arguments: ["key", "[key...]"],
                          run: { $0.exists($1, $2) }),
        "MGET": Command(arity: -2, flags: ["readonly", "fast"], keys: (1, -1, 1), group: "string", since: "1.0.0",
                        summary: "The values of several keys.", arguments: ["key", "[key...]"],
                        run: { $0.multiGet($1, $2) }),
        "MSET": Command(arity: -3, flags: ["write"], keys: (1, -1, 2), group: "string", since: "1.0.1",
                        summary: "Writes several keys (each with its own quorum; not atomic).", arguments: ["key", "value", "[key value...]"],
                        run: { $0.multiSet($1, $2) }),
        "GETDEL": Command(arity: 2, flags: ["write", "fast"], keys: (1, 1, 1), group: "string", since: "6.2.0",
                          summary: "Returns a key's value and deletes it (if no one changed it between).", arguments: ["key"],
                          run: { $0.getDelete($1, $2[0]) }),
        "STRLEN": Command(arity: 2, flags: ["readonly", "fast"], keys: (1, 1, 1), group: "string", since: "2.2.0",
                          summary: "The length of a key's value.", arguments: ["key"],
                          run: { $0.strlen($1, $2[0]) }),
    ]

    /// COMMAND, COMMAND COUNT, COMMAND INFO name..., COMMAND DOCS [name...]:
    /// enough for redis-cli's start-up and its hints.
    func commandInfo(_ connection: RESPConnection, _ arguments: [[UInt8]]) {
        let sub = arguments.first.map { Self.text($0).uppercased() }
        let names = arguments.dropFirst().map { Self.text($0).uppercased() }
        switch sub {
        case nil:
            connection.reply { writer in
                writer.arrayHeader(Self.commands.count)
                for (name, command) in Self.commands.sorted(by: { $0.key < $1.key }) { Self.writeInfo(name, command, into: &writer) }
            }
        case "COUNT"?:
            connection.reply { $0.integer(Self.commands.count) }
        case "INFO"?:
            connection.reply { writer in
                let chosen = names.isEmpty ? Self.commands.keys.sorted() : names
                writer.arrayHeader(chosen.count)
                for name in chosen {
                    if let command = Self.commands[name] { Self.writeInfo(name, command, into: &writer) } else { writer.null() }
                }
            }
        case "DOCS"?:
            connection.reply { writer in
                let chosen = (names.isEmpty ? Self.commands.keys.sorted() : names).filter { Self.commands[$0] != nil }
                writer.mapHeader(chosen.count)
                for name in chosen {
                    let command = Self.commands[name]!
                    writer.bulk(name.lowercased())
                    writer.mapHeader(4)
                    writer.bulk("summary"); writer.bulk(command.summary)
                    writer.bulk("since"); writer.bulk(command.since)
                    writer.bulk("group"); writer.bulk(command.group)
                    writer.bulk("arguments")
                    writer.arrayHeader(command.arguments.count)
                    for argument in command.arguments {
                        let optional = argument.hasPrefix("[")
                        let plain = argument.trimmingCharacters(in: CharacterSet(charactersIn: "[]."))
                        let multiple = argument.hasSuffix("...") || argument.hasSuffix("...]")
                        let flags = (optional ? ["optional"] : []) + (multiple ? ["multiple"] : [])
                        writer.mapHeader(flags.isEmpty ? 2 : 3)
                        writer.bulk("name"); writer.bulk(plain.lowercased())
                        writer.bulk("type"); writer.bulk(plain == "key" ? "key" : "string")
                        if !flags.isEmpty {
                            writer.bulk("flags")
                            writer.arrayHeader(flags.count)
                            for flag in flags { writer.simple(flag) }
                        }
                    }
                }
            }
        default:
            connection.reply { $0.error("ERR unknown subcommand '\(sub?.lowercased() ?? "")'. Try COMMAND HELP.") }
        }
    }

    private static func writeInfo(_ name: String, _ command: Command, into writer: inout RESPWriter) {
        writer.arrayHeader(10)
        writer.bulk(name.lowercased())
        writer.integer(command.arity)
        writer.setHeader(command.flags.count)
        for flag in command.flags { writer.simple(flag) }
        writer.integer(command.keys.first)
        writer.integer(command.keys.last)
        writer.integer(command.keys.step)
        writer.setHeader(0)  // ACL categories
        writer.arrayHeader(0)  // tips
        writer.arrayHeader(0)  // key specs
        writer.arrayHeader(0)  // subcommands
    }
}
