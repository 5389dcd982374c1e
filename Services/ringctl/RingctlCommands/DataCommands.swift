import ArgumentParser
import Foundation
import RPC
import RingProtocol
import RingstoreClient
import Synchronization
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

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
        if let ifVersion, VersionText.parse(ifVersion) == nil {
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
        let quorum = quorum.wire
        let ifVersion = ifVersion.flatMap(VersionText.parse)
        let ifAbsent = ifAbsent
        let fence = fence.flatMap(Self.parseFence)
        if bulk.stdin {
            // Lines of one key are written in input order: a later one is sent after the earlier was answered.
            try await BulkRunner.run(concurrency: bulk.concurrency, orderedBy: { try? BulkLine.parsePut($0).get().key }) { line in
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
        let reply: WirePutReply
        do {
            reply = try await client.put(key: Array(key.utf8), value: Array(value.utf8), quorum: quorum,
                                         ifVersion: ifVersion, ifAbsent: ifAbsent, fence: fence)
        } catch {
            printError("ringctl: put \(key): \(error)")
            throw ExitCode(1)
        }
        if cluster.json {
            print(JSONLine.encode(["key": key, "ok": true, "version": VersionText.format(reply.version), "acks": Int(reply.acks)]))
        } else {
            print("OK")
        }
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
        let quorum = WireQuorum.with { $0.n = UInt32(n ?? 0); $0.r = UInt32(r ?? 0) }
        if bulk.stdin {
            try await BulkRunner.run(concurrency: bulk.concurrency) { line in
                let key: [UInt8]
                switch BulkLine.parseGet(line) {
                case .failure(let error): return (error.key, .error(error.reason))
                case .success(let parsed): key = parsed
                }
                do {
                    let reply = try await client.get(key: key, quorum: quorum)
                    return (key, reply.found ? .value(Array(reply.value)) : .notFound)
                } catch {
                    return (key, .error(BulkOutcome.reason(error)))
                }
            }
            return
        }
        let key = key ?? ""
        let reply: WireGetReply
        do {
            reply = try await client.get(key: Array(key.utf8), quorum: quorum)
        } catch {
            printError("ringctl: get \(key): \(error)")
            throw ExitCode(2)
        }
        if cluster.json {
            var object: [String: Any] = ["key": key, "found": reply.found]
            if reply.found {
                object["version"] = VersionText.format(reply.version)
                if let text = String(validating: reply.value, as: UTF8.self) {
                    object["value"] = text
                } else {
                    object["value_base64"] = reply.value.base64EncodedString()
                }
            }
            print(JSONLine.encode(object))
        } else if reply.found {
            let output = OutputSink()
            output.append(Array(reply.value) + [UInt8(ascii: "\n")])
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
        let reply: WireDeleteReply
        do {
            reply = try await session.client.delete(key: Array(key.utf8), quorum: quorum.wire)
        } catch {
            printError("ringctl: del \(key): \(error)")
            throw ExitCode(1)
        }
        if cluster.json {
            print(JSONLine.encode(["key": key, "ok": true, "version": VersionText.format(reply.version), "acks": Int(reply.acks)]))
        } else {
            print("OK")
        }
    }
}

// MARK: - Shared options

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

    var wire: WireQuorum { WireQuorum.with { $0.n = UInt32(n ?? 0); $0.w = UInt32(w ?? 0) } }
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

/// A version as text, `TIMESTAMP@WRITER` as the nodes print it: printed by `--json` and taken by `put --if-version`.
enum VersionText {
    static func format(_ version: WireVersion) -> String { "\(version.timestamp)@\(version.writer)" }

    static func parse(_ text: String) -> WireVersion? {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let timestamp = UInt64(parts[0]), let writer = UInt64(parts[1]) else { return nil }
        return WireVersion.with { $0.timestamp = timestamp; $0.writer = writer }
    }
}

/// A data client for one command invocation.
struct DataSession {
    let context: ZMQContext
    let client: KeyValueClient

    init(_ cluster: ClusterOptions) throws {
        context = try ZMQContext()
        client = try KeyValueClient(context: context, endpoints: cluster.endpoints, caller: cluster.caller,
                                    configuration: .init(timeout: cluster.callTimeout))
    }

    func close() {
        client.close()
        context.shutdown()
    }
}

// MARK: - Bulk mode

/// Runs the `--stdin` modes: reads lines, keeps up to `concurrency` requests in
/// flight, and prints each answer as it arrives.
enum BulkRunner {
    /// Sends every line of stdin through `handle`, which returns the key to print
    /// and the outcome, up to `concurrency` lines at a time. Lines with the same
    /// `orderedBy` key run one after the other, in input order (a write of a key
    /// is sent only after the previous write of that key was answered). Throws
    /// `ExitCode(1)` when any line failed.
    ///
    /// `nextChunk` and `output` default to stdin and stdout.
    static func run(concurrency: Int, orderedBy orderKey: @escaping ([UInt8]) -> [UInt8]? = { _ in nil },
                    nextChunk: (() async throws -> [UInt8]?)? = nil, output: OutputSink = OutputSink(),
                    handle: @escaping @Sendable ([UInt8]) async -> (key: [UInt8], outcome: BulkOutcome)) async throws {
        let standardInput = StandardInput()
        let nextChunk = nextChunk ?? { try await standardInput.nextChunk() }
        let flusher = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                output.flush()
            }
        }
        defer { flusher.cancel() }
        var splitter = LineSplitter()
        var lineCount = 0
        var failures = 0
        try await withThrowingTaskGroup(of: (failed: Bool, orderKey: [UInt8]?).self) { group in
            var inFlight = 0
            var keysInFlight: [[UInt8]: Int] = [:]
            func finished(_ result: (failed: Bool, orderKey: [UInt8]?)) {
                inFlight -= 1
                if result.failed { failures += 1 }
                if let key = result.orderKey {
                    keysInFlight[key, default: 1] -= 1
                    if keysInFlight[key] == 0 { keysInFlight.removeValue(forKey: key) }
                }
            }
            var lines: [[UInt8]] = []
            var atEnd = false
            while !atEnd {
                lines.removeAll(keepingCapacity: true)
                if let chunk = try await nextChunk() {
                    splitter.feed(chunk) { lines.append($0) }
                } else {
                    atEnd = true
                    if let last = splitter.finish() { lines.append(last) }
                }
                for line in lines {
                    let key = orderKey(line)
                    while inFlight >= concurrency || key.map({ keysInFlight[$0] != nil }) == true,
                          let result = try await group.next() {
                        finished(result)
                    }
                    group.addTask {
                        let (printed, outcome) = await handle(line)
                        var bytes: [UInt8] = []
                        outcome.append(key: printed, to: &bytes)
                        output.append(bytes)
                        return (outcome.isFailure, key)
                    }
                    inFlight += 1
                    if let key { keysInFlight[key, default: 0] += 1 }
                    lineCount += 1
                }
            }
            for try await result in group { finished(result) }
        }
        flusher.cancel()
        output.flush()
        if failures > 0 {
            printError("ringctl: \(failures) of \(lineCount) lines failed")
            throw ExitCode(1)
        }
    }
}

/// Standard output through one buffer shared by concurrent tasks: whole lines
/// are appended, written in large blocks, and flushed by the caller regularly.
final class OutputSink: Sendable {
    static let blockSize = 256 * 1024
    private let buffer = Mutex<[UInt8]>([])
    private let fileDescriptor: Int32

    /// A sink writing to `fileDescriptor` (standard output by default).
    init(fileDescriptor: Int32 = 1) {
        self.fileDescriptor = fileDescriptor
    }

    func append(_ bytes: [UInt8]) {
        buffer.withLock { buffer in
            buffer.append(contentsOf: bytes)
            if buffer.count >= Self.blockSize { drain(&buffer) }
        }
    }

    func flush() {
        buffer.withLock { drain(&$0) }
    }

    /// Writes and empties `buffer`; a closed stdout (EPIPE) drops the output.
    private func drain(_ buffer: inout [UInt8]) {
        buffer.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { break }
                offset += written
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Standard input in chunks, read on a dispatch queue of its own so that a slow
/// producer never blocks a thread of the cooperative pool.
final class StandardInput: Sendable {
    static let chunkSize = 256 * 1024
    private let queue = DispatchQueue(label: "ringctl.stdin")

    /// The next chunk, or nil at the end of the input.
    func nextChunk() async throws -> [UInt8]? {
        let result: Result<[UInt8]?, StandardInputError> = await withCheckedContinuation { continuation in
            queue.async {
                var chunk = [UInt8](repeating: 0, count: Self.chunkSize)
                while true {
                    let count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
                    if count > 0 {
                        chunk.removeLast(chunk.count - count)
                        continuation.resume(returning: .success(chunk))
                    } else if count == 0 {
                        continuation.resume(returning: .success(nil))
                    } else if errno == EINTR {
                        continue
                    } else {
                        continuation.resume(returning: .failure(StandardInputError(code: errno)))
                    }
                    return
                }
            }
        }
        return try result.get()
    }
}

struct StandardInputError: Error, CustomStringConvertible {
    let code: Int32
    var description: String { "reading stdin: \(String(cString: strerror(code)))" }
}
