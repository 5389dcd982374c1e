import ArgumentParser
import Foundation
import RingstoreClient

/// `ringctl put KEY VALUE` or `ringctl put --stdin`.
struct PutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Write a value: prints OK once W replicas acknowledged it.",
        discussion: """
            With --stdin, reads lines KEY<TAB>VALUE (the value is the rest of the line, byte for byte; \
            a CR before the LF is dropped) and prints KEY<TAB>OK or KEY<TAB>ERROR <reason> per line \
            in the order the writes are acknowledged, with --concurrency writes in flight. \
            Exits 1 when any write failed.
            """
    )

    @Argument(help: "The key (UTF-8).") var key: String?
    @Argument(help: "The value (UTF-8).") var value: String?
    @OptionGroup var quorum: WriteQuorumOptions
    @Option(help: ArgumentHelp("Write only if the key's newest version is this one (TIMESTAMP@WRITER, as `get --json` prints it).",
                               valueName: "version"))
    var ifVersion: String?
    @Flag(help: "Write only if the key is absent or deleted.") var ifAbsent = false
    @Option(help: ArgumentHelp("A fenced write: refused when a replica has seen a higher token of lock NAME on this key (the token `lock acquire` printed).",
                               valueName: "NAME:TOKEN"))
    var fence: String?
    @OptionGroup var bulk: BulkOptions
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        try bulk.validate(arguments: [key, value], names: "KEY VALUE")
        if let ifVersion, Version(ifVersion) == nil {
            throw ValidationError("--if-version must be TIMESTAMP@WRITER, not '\(ifVersion)'")
        }
        if ifVersion != nil && ifAbsent { throw ValidationError("--if-version and --if-absent exclude each other") }
        if ifVersion != nil && bulk.stdin { throw ValidationError("--if-version applies to one key, not to --stdin") }
        if let fence, Self.parseFence(fence) == nil {
            throw ValidationError("--fence must be NAME:TOKEN with a lock name and a token above 0, not '\(fence)'")
        }
    }

    /// "NAME:TOKEN", split at the last colon (a lock name may hold colons).
    static func parseFence(_ text: String) -> (name: String, token: UInt64)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        let name = String(text[..<colon])
        guard !name.isEmpty, let token = UInt64(text[text.index(after: colon)...]), token > 0 else { return nil }
        return (name, token)
    }

    func run() async throws {
        let session = try DataSession(cluster)
        defer { session.close() }
        let client = session.client
        let quorum = quorum.quorum
        let ifVersion = ifVersion.flatMap(Version.init)
        let ifAbsent = ifAbsent
        let fence = fence.flatMap(Self.parseFence)
        if bulk.stdin {
            // Lines of one key are written in input order: a later one is sent after the earlier was answered.
            try await BulkRunner.run(concurrency: bulk.concurrency, orderedBy: { try? BulkLine.parsePut($0).get().key },
                                     progress: "put") { line in
                let key: [UInt8], value: [UInt8]
                switch BulkLine.parsePut(line) {
                case .failure(let error): return (error.key, .error(error.reason))
                case .success(let parsed): (key, value) = parsed
                }
                do {
                    _ = try await client.put(key: key, value: value, quorum: quorum, ifVersion: ifVersion, ifAbsent: ifAbsent, fence: fence)
                    return (key, .ok)
                } catch {
                    return (key, .error(BulkOutcome.reason(error)))
                }
            }
            return
        }
        let key = key ?? "", value = value ?? ""
        let reply: WriteResult
        do {
            reply = try await client.put(key: Array(key.utf8), value: Array(value.utf8), quorum: quorum,
                                         ifVersion: ifVersion, ifAbsent: ifAbsent, fence: fence)
        } catch {
            printError("ringctl: put \(key): \(error)")
            throw ExitCode(1)
        }
        printWritten(key, reply, json: cluster.json)
    }
}

/// `ringctl get KEY` or `ringctl get --stdin`.
struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Read a value: prints it followed by a newline; exits 1 when the key is absent.",
        discussion: """
            The value is written byte for byte. Exit status: 0 found, 1 absent or deleted \
            (\"not found\" on stderr), 2 failed. With --json: one object with key, found, \
            version and value (or value_base64 when the value is not UTF-8).

            With --stdin, reads one KEY per line and prints KEY<TAB>VALUE, KEY<TAB>NOT_FOUND \
            or KEY<TAB>ERROR <reason> per line in the order the answers arrive, with \
            --concurrency reads in flight. Exits 1 when any read failed (NOT_FOUND is an answer, not a failure).
            """
    )

    @Argument(help: "The key (UTF-8).") var key: String?
    @Option(name: .customLong("r"), help: ArgumentHelp("Replicas that must answer (default: the cluster's R).", valueName: "n"))
    var r: Int?
    @Option(name: .customLong("n"), help: ArgumentHelp("Replicas of the key (default: the cluster's N).", valueName: "n"))
    var n: Int?
    @OptionGroup var bulk: BulkOptions
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        try QuorumValue.validate(r, name: "--r")
        try QuorumValue.validate(n, name: "--n")
        try bulk.validate(arguments: [key], names: "KEY")
    }

    func run() async throws {
        let session = try DataSession(cluster)
        defer { session.close() }
        let client = session.client
        let quorum = Quorum(n: n, r: r)
        if bulk.stdin {
            try await BulkRunner.run(concurrency: bulk.concurrency, progress: "get") { line in
                let key: [UInt8]
                switch BulkLine.parseGet(line) {
                case .failure(let error): return (error.key, .error(error.reason))
                case .success(let parsed): key = parsed
                }
                do {
                    let reply = try await client.get(key: key, quorum: quorum)
                    return (key, reply.found ? .value(reply.value) : .notFound)
                } catch {
                    return (key, .error(BulkOutcome.reason(error)))
                }
            }
            return
        }
        let key = key ?? ""
        let reply: ReadResult
        do {
            reply = try await client.get(key: Array(key.utf8), quorum: quorum)
        } catch {
            printError("ringctl: get \(key): \(error)")
            throw ExitCode(2)
        }
        if cluster.json {
            var object: [String: Any] = ["key": key, "found": reply.found]
            if reply.found {
                object["version"] = reply.version.description
                if let text = String(validating: reply.value, as: UTF8.self) {
                    object["value"] = text
                } else {
                    object["value_base64"] = Data(reply.value).base64EncodedString()
                }
            }
            print(JSONLine.encode(object))
        } else if reply.found {
            let output = OutputSink()
            output.append(reply.value + [UInt8(ascii: "\n")])
            output.flush()
        }
        if !reply.found {
            printError("ringctl: get \(key): not found")
            throw ExitCode(1)
        }
    }
}

/// `ringctl del KEY`.
struct DelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del",
        abstract: "Delete a key (a tombstone, acknowledged by W replicas): prints OK."
    )

    @Argument(help: "The key (UTF-8).") var key: String
    @OptionGroup var quorum: WriteQuorumOptions
    @OptionGroup var cluster: ClusterOptions

    func validate() throws {
        guard !key.isEmpty else { throw ValidationError("KEY must not be empty") }
    }

    func run() async throws {
        let session = try DataSession(cluster)
        defer { session.close() }
        let reply: WriteResult
        do {
            reply = try await session.client.delete(key: Array(key.utf8), quorum: quorum.quorum)
        } catch {
            printError("ringctl: del \(key): \(error)")
            throw ExitCode(1)
        }
        printWritten(key, reply, json: cluster.json)
    }
}

/// How put and del answer: `OK`, or with --json the key, version and acknowledgements.
private func printWritten(_ key: String, _ result: WriteResult, json: Bool) {
    print(json ? JSONLine.encode(["key": key, "ok": true, "version": result.version.description, "acks": result.acks]) : "OK")
}
