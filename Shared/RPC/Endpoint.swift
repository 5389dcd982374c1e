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
