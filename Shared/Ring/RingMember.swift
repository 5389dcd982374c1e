/// A storage node as the ring sees it: its advertised address and its weight.
///
/// A member's identity is its address, `host:port`; the ring hashes exactly
/// that string, so two processes that agree on the addresses agree on the
/// ring. The host is a DNS name or IPv4 address (letters, digits, `-`, `.`,
/// `_`) or a bracketed IPv6 address (`[::1]:7501`); the port is a decimal
/// number in 1...65535 without leading zeros, so each member has exactly one
/// spelling.
public struct RingMember: Hashable, Sendable, CustomStringConvertible {
    /// The host part of the address, as given (brackets kept for IPv6).
    public let host: String
    /// The TCP port, in 1...65535.
    public let port: Int
    /// How many shares of the ring this member takes relative to the others; at least 1.
    public let weight: Int
    /// `host:port`, the member's identity and the text the ring hashes.
    public let address: String

    /// Creates a member from its parts, checking the host, the port and the weight.
    public init(host: String, port: Int, weight: Int = 1) throws(RingError) {
        guard Self.isValidHost(host) else {
            throw RingError.malformedAddress.with(detail: "invalid host \"\(host)\"")
        }
        guard (1...65535).contains(port) else {
            throw RingError.malformedAddress.with(detail: "port \(port) is not in 1...65535")
        }
        guard weight >= 1 else {
            throw RingError.invalidWeight.with(detail: "\(host):\(port) has weight \(weight); weights are at least 1")
        }
        self.host = host
        self.port = port
        self.weight = weight
        self.address = "\(host):\(port)"
    }

    /// Creates a member from an address `host:port`, splitting at the last colon.
    public init(address: String, weight: Int = 1) throws(RingError) {
        guard let colon = address.lastIndex(of: ":") else {
            throw RingError.malformedAddress.with(detail: "\"\(address)\" is not host:port")
        }
        let host = String(address[..<colon])
        let portText = address[address.index(after: colon)...]
        guard let port = Self.parseDecimal(portText), port <= 65535 else {
            throw RingError.malformedAddress.with(detail: "\"\(address)\" has no valid port")
        }
        do {
            try self.init(host: host, port: port, weight: weight)
        } catch let error where error == .malformedAddress {
            throw RingError.malformedAddress.with(detail: "\"\(address)\" is not host:port (\(error.detail))")
        }
    }

    /// Creates a member from the command-line form `host:port` or `host:port=WEIGHT`.
    public init(parsing specification: String) throws(RingError) {
        guard let equals = specification.lastIndex(of: "=") else {
            try self.init(address: specification)
            return
        }
        let weightText = specification[specification.index(after: equals)...]
        guard let weight = Self.parseDecimal(weightText, allowingLeadingZeros: true) else {
            throw RingError.invalidWeight.with(detail: "\"\(specification)\" has no valid weight after '='")
        }
        try self.init(address: String(specification[..<equals]), weight: weight)
    }

    /// The command-line form: `host:port`, with `=WEIGHT` appended when the weight is not 1.
    public var description: String {
        weight == 1 ? address : "\(address)=\(weight)"
    }

    /// Parses a non-negative decimal of at most 9 digits (so it cannot overflow).
    private static func parseDecimal(_ text: Substring, allowingLeadingZeros: Bool = false) -> Int? {
        let digits = text.utf8
        guard !digits.isEmpty, digits.count <= 9 else { return nil }
        if !allowingLeadingZeros, digits.count > 1, digits.first == UInt8(ascii: "0") { return nil }
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func isValidHost(_ host: String) -> Bool {
        let bytes = Array(host.utf8)
        guard !bytes.isEmpty, bytes.count <= 255 else { return false }
        if bytes.first == UInt8(ascii: "[") {
            // Bracketed IPv6, optionally with a zone (`[fe80::1%eth0]`).
            guard bytes.count >= 4, bytes.last == UInt8(ascii: "]") else { return false }
            let inner = bytes.dropFirst().dropLast()
            return inner.contains(UInt8(ascii: ":"))
                && inner.allSatisfy { isHostByte($0) || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: "%") }
        }
        return bytes.allSatisfy(isHostByte)
    }

    private static func isHostByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }
}
