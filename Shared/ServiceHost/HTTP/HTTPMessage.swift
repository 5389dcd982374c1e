import Foundation

/// The head of an HTTP/1.x request (the HTTP port reads no bodies).
public struct HTTPRequest: Sendable, Equatable {
    public let method: String
    /// The path without its query, percent-decoding not applied.
    public let path: String
    public let query: [String: String]
    /// Header names in lower case; a repeated header keeps its last value.
    public let headers: [String: String]
    /// The client's `host:port`.
    public var peer: String = ""

    /// Parses a head (up to, not including, the blank line); nil when it is
    /// not an HTTP/1.x request.
    public static func parse(head: [UInt8]) -> HTTPRequest? {
        let text = String(decoding: head, as: UTF8.self)
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard !lines.isEmpty else { return nil }
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1."),
              requestLine[0].allSatisfy({ $0.isUppercase }), requestLine[1].hasPrefix("/") else { return nil }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { return nil }
            let name = line[..<colon].lowercased()
            guard !name.isEmpty, !name.contains(" ") else { return nil }
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let target = requestLine[1]
        let path: Substring
        var query: [String: String] = [:]
        if let mark = target.firstIndex(of: "?") {
            path = target[..<mark]
            for pair in target[target.index(after: mark)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
        } else {
            path = target
        }
        return HTTPRequest(method: String(requestLine[0]), path: String(path), query: query, headers: headers)
    }
}

/// A whole response.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var headers: [(String, String)] = []
    public var body: [UInt8]

    public init(status: Int, contentType: String, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// A plain-text response; the text ends with a newline.
    public static func text(_ status: Int, _ text: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "text/plain; charset=utf-8", headers: headers,
                     body: Array((text.hasSuffix("\n") ? text : text + "\n").utf8))
    }

    /// The head: status line and headers, with `Connection: close` and the
    /// body's length (nil for a stream, which has no length).
    static func head(status: Int, contentType: String, headers: [(String, String)], length: Int?) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason(status))\r\nContent-Type: \(contentType)\r\n"
        if let length { text += "Content-Length: \(length)\r\nConnection: close\r\n" }
        text += "Cache-Control: no-store\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        return Array((text + "\r\n").utf8)
    }

    func encoded(includeBody: Bool) -> [UInt8] {
        Self.head(status: status, contentType: contentType, headers: headers, length: body.count) + (includeBody ? body : [])
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

/// What a route answers: a whole response, or a stream that stays open
/// (server-sent events) and is written to as things happen.
public enum HTTPReply {
    case response(HTTPResponse)
    case stream(contentType: String, open: (HTTPStream) -> Void)
}

/// The open body of a streamed response, on the reactor thread. A client
/// that does not read falls behind; past the server's limit it is closed.
public final class HTTPStream {
    var pending: [UInt8] = []
    /// Called when the client closed or was closed.
    public var onClose: () -> Void = {}
    public internal(set) var isOpen = true
    let wake: () -> Void

    init(wake: @escaping () -> Void) {
        self.wake = wake
    }

    /// Queues bytes for the client; nothing happens once it is closed.
    public func send(_ bytes: [UInt8]) {
        guard isOpen else { return }
        pending += bytes
        wake()
    }

    /// One server-sent event: `event:` (when given), `id:` and `data:` lines.
    public func sendEvent(_ data: String, event: String? = nil, id: String? = nil) {
        var text = ""
        if let event { text += "event: \(event)\n" }
        if let id { text += "id: \(id)\n" }
        for line in data.split(separator: "\n", omittingEmptySubsequences: false) { text += "data: \(line)\n" }
        send(Array((text + "\n").utf8))
    }
}
