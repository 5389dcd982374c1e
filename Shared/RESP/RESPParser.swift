/// Reads Redis requests (RESP) from a connection's bytes: arrays of bulk
/// strings, as every client library sends them, and inline commands (words
/// on a line, as typed into telnet), as Redis does.
///
/// Bytes are appended as they arrive; `next()` returns each complete command
/// in order and nil while the next one is still incomplete. Memory stays
/// bounded: a bulk string longer than `maxBulkBytes`, an array of more than
/// `maxArguments`, a command of more than `maxCommandBytes` in all, an inline
/// line longer than `maxInlineBytes` or a header
/// that is not RESP is a protocol error, after which the connection is to be
/// closed (Redis does the same); the parser does not wait for a 1 GB bulk to
/// arrive before refusing it.
public struct RESPParser: Sendable {
    /// Why a request cannot be read; the text follows Redis's own errors.
    public struct ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public let maxBulkBytes: Int
    public let maxArguments: Int
    public let maxInlineBytes: Int
    public let maxCommandBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0

    public init(maxBulkBytes: Int = 8 << 20, maxArguments: Int = 1 << 20, maxInlineBytes: Int = 64 << 10,
                maxCommandBytes: Int = 64 << 20) {
        self.maxBulkBytes = maxBulkBytes
        self.maxArguments = maxArguments
        self.maxInlineBytes = maxInlineBytes
        self.maxCommandBytes = maxCommandBytes
    }

    /// Bytes received and not yet returned as commands.
    public var buffered: Int { buffer.count - start }

    /// Appends bytes read from the connection.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// The next complete command (its arguments, the name first), nil when
    /// more bytes are needed. An empty inline line is skipped.
    public mutating func next() throws(ProtocolError) -> [[UInt8]]? {
        while start < buffer.count {
            let result: (command: [[UInt8]]?, end: Int)?
            if buffer[start] == UInt8(ascii: "*") {
                result = try readArray(from: start)
            } else {
                result = try readInline(from: start)
            }
            guard let (command, end) = result else { return nil }
            start = end
            if let command { return command }
        }
        return nil
    }

    /// `*N\r\n` then N `$len\r\n<bytes>\r\n`; nil when incomplete.
    private func readArray(from position: Int) throws(ProtocolError) -> (command: [[UInt8]]?, end: Int)? {
        guard let (count, afterCount) = try readNumber(from: position + 1, what: "multibulk length") else { return nil }
        guard count <= maxArguments else { throw ProtocolError(message: "Protocol error: invalid multibulk length") }
        if count <= 0 { return (nil, afterCount) }  // Redis ignores `*0` and `*-1`
        var arguments: [[UInt8]] = []
        arguments.reserveCapacity(count)
        var cursor = afterCount
        for _ in 0..<count {
            guard cursor < buffer.count else { return nil }
            guard buffer[cursor] == UInt8(ascii: "$") else {
                throw ProtocolError(message: "Protocol error: expected '$', got '\(Self.printable(buffer[cursor]))'")
            }
            guard let (length, afterLength) = try readNumber(from: cursor + 1, what: "bulk length") else { return nil }
            guard length >= 0, length <= maxBulkBytes else { throw ProtocolError(message: "Protocol error: invalid bulk length") }
            let end = afterLength + length
            guard end - position <= maxCommandBytes else { throw ProtocolError(message: "Protocol error: command too big") }
            guard end + 2 <= buffer.count else { return nil }
            guard buffer[end] == 13, buffer[end + 1] == 10 else {
                throw ProtocolError(message: "Protocol error: bulk string not terminated by CRLF")
            }
            arguments.append(Array(buffer[afterLength..<end]))
            cursor = end + 2
        }
        return (arguments, cursor)
    }

    /// A decimal number ending in CRLF, starting at `position`; nil when the
    /// line is not complete yet.
    private func readNumber(from position: Int, what: String) throws(ProtocolError) -> (Int, Int)? {
        var index = position
        var negative = false
        var value = 0
        var digits = 0
        if index < buffer.count && buffer[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        while index < buffer.count {
            let byte = buffer[index]
            if byte == 13 {
                guard index + 1 < buffer.count else { return nil }
                guard buffer[index + 1] == 10, digits > 0 else { throw ProtocolError(message: "Protocol error: invalid \(what)") }
                return (negative ? -value : value, index + 2)
            }
            guard byte >= 48, byte <= 57, digits < 18 else { throw ProtocolError(message: "Protocol error: invalid \(what)") }
            value = value * 10 + Int(byte - 48)
            digits += 1
            index += 1
        }
        return nil
    }

    /// Words on one line (`\n` or `\r\n`), split on spaces, with Redis's
    /// quoting ("..." with escapes, '...'); nil when the line is incomplete.
    private func readInline(from position: Int) throws(ProtocolError) -> (command: [[UInt8]]?, end: Int)? {
        let limit = min(buffer.count, position + maxInlineBytes + 2)
        guard let newline = buffer[position..<limit].firstIndex(of: 10) else {
            if buffer.count - position > maxInlineBytes { throw ProtocolError(message: "Protocol error: too big inline request") }
            return nil
        }
        var line = buffer[position..<newline]
        if line.last == 13 { line = line.dropLast() }
        let words = try Self.split(line)
        return (words.isEmpty ? nil : words, newline + 1)
    }

    /// Splits an inline line into words, as redis-cli and Redis do.
    static func split(_ line: ArraySlice<UInt8>) throws(ProtocolError) -> [[UInt8]] {
        var words: [[UInt8]] = []
        var index = line.startIndex
        func isSpace(_ byte: UInt8) -> Bool { byte == 32 || byte == 9 }
        while index < line.endIndex {
            while index < line.endIndex && isSpace(line[index]) { index += 1 }
            guard index < line.endIndex else { break }
            var word: [UInt8] = []
            let quote = line[index]
            if quote == UInt8(ascii: "\"") || quote == UInt8(ascii: "'") {
                index += 1
                var closed = false
                while index < line.endIndex {
                    let byte = line[index]
                    if byte == quote {
                        closed = true
                        index += 1
                        break
                    }
                    if quote == UInt8(ascii: "\""), byte == UInt8(ascii: "\\"), index + 1 < line.endIndex {
                        index += 1
                        switch line[index] {
                        case UInt8(ascii: "n"): word.append(10)
                        case UInt8(ascii: "r"): word.append(13)
                        case UInt8(ascii: "t"): word.append(9)
                        case UInt8(ascii: "x") where index + 2 < line.endIndex:
                            if let value = UInt8(String(decoding: line[(index + 1)...(index + 2)], as: UTF8.self), radix: 16) {
                                word.append(value)
                                index += 2
                            } else {
                                word.append(UInt8(ascii: "x"))
                            }
                        case let other: word.append(other)
                        }
                    } else if quote == UInt8(ascii: "'"), byte == UInt8(ascii: "\\"), index + 1 < line.endIndex, line[index + 1] == quote {
                        word.append(quote)
                        index += 1
                    } else {
                        word.append(byte)
                    }
                    index += 1
                }
                guard closed, index == line.endIndex || isSpace(line[index]) else {
                    throw ProtocolError(message: "Protocol error: unbalanced quotes in request")
                }
            } else {
                while index < line.endIndex && !isSpace(line[index]) {
                    word.append(line[index])
                    index += 1
                }
            }
            words.append(word)
        }
        return words
    }

    private static func printable(_ byte: UInt8) -> String {
        (32..<127).contains(byte) ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }
}
