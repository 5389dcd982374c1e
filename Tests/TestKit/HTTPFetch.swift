import Foundation

/// A plain HTTP/1.1 GET over a real TCP connection, for tests of the
/// operations port: the status, the headers (names in lower case) and the body.
public struct HTTPFetch: Sendable {
    public let status: Int
    public let headers: [String: String]
    public let body: String

    /// `GET path` on `host:port` (loopback by default); the server closes after answering.
    public static func get(host: String = "127.0.0.1", port: UInt16, _ path: String, headers: [String: String] = [:],
                           method: String = "GET", timeout: Duration = .seconds(10)) throws -> HTTPFetch {
        let connection = try RawConnection(host: host, port: port)
        defer { connection.close() }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        try connection.send(request + "\r\n")
        return try parse(connection.readUntilClosed(timeout: timeout))
    }

    /// Reads a whole response text.
    public static func parse(_ text: String) throws -> HTTPFetch {
        guard let split = text.range(of: "\r\n\r\n") else { throw FixtureError("no HTTP head in: \(text.prefix(200))") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusLine = lines.first?.split(separator: " ") ?? []
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw FixtureError("bad status line: \(lines.first ?? "")") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPFetch(status: status, headers: headers, body: String(text[split.upperBound...]))
    }
}
