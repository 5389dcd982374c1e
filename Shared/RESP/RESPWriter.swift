/// Writes Redis replies (RESP2, or RESP3 after `HELLO 3`) into a buffer.
public struct RESPWriter: Sendable {
    /// 2 or 3: how nulls and maps are written.
    public var version: Int
    public private(set) var bytes: [UInt8] = []

    public init(version: Int = 2) {
        self.version = version
    }

    public var isEmpty: Bool { bytes.isEmpty }

    /// Hands over what was written and starts again.
    public mutating func take() -> [UInt8] {
        defer { bytes.removeAll(keepingCapacity: true) }
        return bytes
    }

    /// `+OK`-style status; CR and LF in `text` become spaces.
    public mutating func simple(_ text: String) {
        bytes.append(UInt8(ascii: "+"))
        appendLine(text)
    }

    /// `-ERR ...`: `text` starts with the error code (`ERR`, `WRONGTYPE`,
    /// `NOAUTH`...); CR and LF become spaces.
    public mutating func error(_ text: String) {
        bytes.append(UInt8(ascii: "-"))
        appendLine(text)
    }

    public mutating func integer(_ value: Int) {
        bytes.append(UInt8(ascii: ":"))
        bytes.append(contentsOf: String(value).utf8)
        crlf()
    }

    public mutating func bulk(_ value: [UInt8]) {
        bytes.append(UInt8(ascii: "$"))
        bytes.append(contentsOf: String(value.count).utf8)
        crlf()
        bytes.append(contentsOf: value)
        crlf()
    }

    public mutating func bulk(_ text: String) {
        bulk(Array(text.utf8))
    }

    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    public mutating func null() {
        if version >= 3 {
            bytes.append(contentsOf: [UInt8(ascii: "_"), 13, 10])
        } else {
            bytes.append(contentsOf: Array("$-1\r\n".utf8))
        }
    }

    public mutating func arrayHeader(_ count: Int) {
        bytes.append(UInt8(ascii: "*"))
        bytes.append(contentsOf: String(count).utf8)
        crlf()
    }

    /// A map of `count` pairs: `%` in RESP3, an array of twice as many
    /// elements in RESP2. Write the pairs after it.
    public mutating func mapHeader(_ count: Int) {
        if version >= 3 {
            bytes.append(UInt8(ascii: "%"))
            bytes.append(contentsOf: String(count).utf8)
            crlf()
        } else {
            arrayHeader(count * 2)
        }
    }

    /// A set of `count` elements: `~` in RESP3, an array in RESP2.
    public mutating func setHeader(_ count: Int) {
        if version >= 3 {
            bytes.append(UInt8(ascii: "~"))
            bytes.append(contentsOf: String(count).utf8)
            crlf()
        } else {
            arrayHeader(count)
        }
    }

    /// Bytes already encoded (a reply made earlier).
    public mutating func raw(_ encoded: [UInt8]) {
        bytes.append(contentsOf: encoded)
    }

    private mutating func appendLine(_ text: String) {
        for byte in text.utf8 { bytes.append(byte == 13 || byte == 10 ? 32 : byte) }
        crlf()
    }

    private mutating func crlf() {
        bytes.append(13)
        bytes.append(10)
    }
}
