/// Splits a byte stream into lines: feed it chunks of any size, lines may span
/// chunks. A line ends at `\n`, and a `\r` right before it is dropped (CRLF
/// input); every other byte is kept, so keys and values may be any bytes but
/// LF. A last line without `\n` comes out of ``finish()``.
public struct LineSplitter: Sendable {
    /// The start of a line whose end has not arrived yet.
    private var pending: [UInt8] = []

    public init() {}

    /// Calls `body` with each line completed by `chunk`, in order.
    public mutating func feed(_ chunk: some Collection<UInt8>, _ body: ([UInt8]) -> Void) {
        var start = chunk.startIndex
        while let newline = chunk[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var line: [UInt8]
            if pending.isEmpty {
                line = Array(chunk[start..<newline])
            } else {
                line = pending
                line.append(contentsOf: chunk[start..<newline])
                pending.removeAll(keepingCapacity: true)
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            body(line)
            start = chunk.index(after: newline)
        }
        pending.append(contentsOf: chunk[start...])
    }

    /// The last line when the input did not end with `\n`; nil otherwise.
    public mutating func finish() -> [UInt8]? {
        guard !pending.isEmpty else { return nil }
        defer { pending = [] }
        var line = pending
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return line
    }
}

/// The input lines of the bulk modes: `KEY<TAB>VALUE` for puts, `KEY` for gets.
public enum BulkLine {
    /// Why an input line cannot be sent, and the key to print it under.
    public struct Malformed: Error, Equatable, Sendable {
        /// The bytes to print in the key column: the key if there is one, else the line.
        public let key: [UInt8]
        public let reason: String

        public init(key: [UInt8], reason: String) {
            self.key = key
            self.reason = reason
        }
    }

    /// Splits `KEY<TAB>VALUE` at the first tab; the value may hold further tabs
    /// and may be empty (the server decides whether it accepts that).
    public static func parsePut(_ line: [UInt8]) -> Result<(key: [UInt8], value: [UInt8]), Malformed> {
        guard let tab = line.firstIndex(of: UInt8(ascii: "\t")) else {
            return .failure(Malformed(key: line, reason: line.isEmpty ? "empty line" : "no TAB between key and value"))
        }
        guard tab > line.startIndex else { return .failure(Malformed(key: [], reason: "empty key")) }
        return .success((Array(line[..<tab]), Array(line[(tab + 1)...])))
    }

    /// The whole line is the key; it must not be empty.
    public static func parseGet(_ line: [UInt8]) -> Result<[UInt8], Malformed> {
        line.isEmpty ? .failure(Malformed(key: [], reason: "empty key")) : .success(line)
    }
}

/// The answer to one bulk line, printed as `KEY<TAB>OK`, `KEY<TAB>VALUE`,
/// `KEY<TAB>NOT_FOUND` or `KEY<TAB>ERROR <reason>`.
public enum BulkOutcome: Equatable, Sendable {
    case ok
    case value([UInt8])
    case notFound
    case error(String)

    /// Whether the line counts as failed for the exit status (a missing key does not).
    public var isFailure: Bool {
        if case .error = self { true } else { false }
    }

    /// Appends the output line for `key`, with its `\n`, to `output`.
    public func append(key: [UInt8], to output: inout [UInt8]) {
        output.append(contentsOf: key)
        output.append(UInt8(ascii: "\t"))
        switch self {
        case .ok: output.append(contentsOf: "OK".utf8)
        case .value(let value): output.append(contentsOf: value)
        case .notFound: output.append(contentsOf: "NOT_FOUND".utf8)
        case .error(let reason):
            output.append(contentsOf: "ERROR ".utf8)
            output.append(contentsOf: reason.utf8.map { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") ? UInt8(ascii: " ") : $0 })
        }
        output.append(UInt8(ascii: "\n"))
    }

    /// A one-line reason for a failed request: the status name, then the message.
    public static func reason(_ error: some Error) -> String {
        "\(error)"
    }
}
