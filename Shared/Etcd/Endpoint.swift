/// One etcd member's client address: `host:port` (IPv6 hosts in brackets).
///
/// Accepted spellings: `host:port`, `http://host:port` (a trailing `/` is
/// ignored), `[::1]:2379`, and a bare `host` (port 2379, etcd's client port).
/// `https://` is refused: this client speaks plain HTTP only.
struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    let host: String
    let port: UInt16

    var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    init(parsing given: String) throws {
        var text = Substring(given.trimmingWhitespace())
        if text.hasPrefix("https://") {
            throw EtcdError.invalidEndpoint(given, reason: "TLS (https) is not supported by this client")
        }
        if text.hasPrefix("http://") { text = text.dropFirst("http://".count) }
        while text.hasSuffix("/") { text = text.dropLast() }
        guard !text.isEmpty else { throw EtcdError.invalidEndpoint(given, reason: "empty") }
        if text.contains("/") { throw EtcdError.invalidEndpoint(given, reason: "a path is not allowed") }

        let hostPart: Substring
        let portPart: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw EtcdError.invalidEndpoint(given, reason: "unclosed [ in an IPv6 address")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                portPart = nil
            } else if rest.hasPrefix(":") {
                portPart = rest.dropFirst()
            } else {
                throw EtcdError.invalidEndpoint(given, reason: "expected :port after ]")
            }
        } else if let colon = text.lastIndex(of: ":") {
            guard text.firstIndex(of: ":") == colon else {
                throw EtcdError.invalidEndpoint(given, reason: "an IPv6 address must be in brackets: [addr]:port")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        } else {
            hostPart = text
            portPart = nil
        }
        guard !hostPart.isEmpty else { throw EtcdError.invalidEndpoint(given, reason: "no host") }
        host = String(hostPart)
        if let portPart {
            guard let value = UInt16(portPart), value > 0 else {
                throw EtcdError.invalidEndpoint(given, reason: "bad port '\(portPart)'")
            }
            port = value
        } else {
            port = 2379
        }
    }

    /// `host:port,host:port` (or with `etcd://` in front, as `--store etcd://...` spells it).
    static func list(_ text: String) throws -> [Endpoint] {
        var body = Substring(text)
        if body.hasPrefix("etcd://") { body = body.dropFirst("etcd://".count) }
        return try body.split(separator: ",").map { try Endpoint(parsing: String($0)) }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first.isWhitespace { scalars = scalars.dropFirst() }
        while let last = scalars.last, last.isWhitespace { scalars = scalars.dropLast() }
        return String(scalars)
    }
}
