import Foundation

/// Helpers for ZeroMQ endpoint strings and `host:port` member addresses.
public enum Endpoint {
    /// `tcp://127.0.0.1:7400` → `127.0.0.1:7400`; other transports unchanged.
    public static func address(of endpoint: String) -> String {
        endpoint.hasPrefix("tcp://") ? String(endpoint.dropFirst(6)) : endpoint
    }

    /// `127.0.0.1:7400` → `tcp://127.0.0.1:7400`; a full endpoint is kept.
    public static func endpoint(for address: String) -> String {
        address.contains("://") ? address : "tcp://" + address
    }

    /// A comma-separated list (`a:7400,b:7402`, or full endpoints) as
    /// endpoints, in order: blanks around commas and empty items are dropped,
    /// `host:port` gets `tcp://`, a repeated endpoint is kept once.
    public static func list(_ text: String) -> [String] {
        var endpoints: [String] = []
        for item in text.split(separator: ",") {
            let trimmed = item.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            let endpoint = endpoint(for: trimmed)
            if !endpoints.contains(endpoint) { endpoints.append(endpoint) }
        }
        return endpoints
    }

    /// The event (PUB) endpoint of a service at request endpoint `endpoint`:
    /// the port plus one (`tcp://h:7400` → `tcp://h:7401`); other shapes are
    /// returned unchanged.
    public static func events(of endpoint: String) -> String {
        guard let colon = endpoint.lastIndex(of: ":"),
              let port = UInt16(endpoint[endpoint.index(after: colon)...]), port < UInt16.max
        else { return endpoint }
        return endpoint[..<colon] + ":\(port + 1)"
    }

    /// Why `endpoint` is not usable, or `nil` when it looks right.
    public static func problem(with endpoint: String) -> String? {
        let transports = ["tcp://", "ipc://", "inproc://"]
        guard let transport = transports.first(where: { endpoint.hasPrefix($0) }) else {
            return "endpoint '\(endpoint)' must start with tcp://, ipc:// or inproc://"
        }
        let rest = endpoint.dropFirst(transport.count)
        if rest.isEmpty { return "endpoint '\(endpoint)' has no address" }
        if transport == "tcp://" {
            guard let colon = rest.lastIndex(of: ":"), colon != rest.startIndex else {
                return "endpoint '\(endpoint)' needs host:port"
            }
            let port = rest[rest.index(after: colon)...]
            if port != "*", UInt16(port) == nil || port == "0" {
                return "endpoint '\(endpoint)' has an invalid port '\(port)'"
            }
        }
        return nil
    }
}
