#if canImport(Glibc)
import Glibc
#endif

/// Why one attempt at one endpoint failed, and whether etcd may have acted on
/// the request anyway: that decides whether a mutation may be sent elsewhere.
struct TransportFailure: Error, Sendable {
    enum Phase: Sendable {
        /// Nothing reached etcd (name lookup, connect, send, or the peer is not
        /// an HTTP server at all): safe to send the request to another member.
        case notSent
        /// The request went out but no complete answer came back (timeout,
        /// reset, truncated or mangled HTTP): etcd may or may not have applied it.
        case ambiguous
    }
    let phase: Phase
    let reason: String
}

/// A point in time to give up at; `nil` waits forever (a watch stream).
typealias Deadline = ContinuousClock.Instant?

/// Milliseconds left until `deadline` for poll(2): -1 forever, 0 when passed.
func pollTimeout(_ deadline: Deadline) -> Int32 {
    guard let deadline else { return -1 }
    let left = deadline - ContinuousClock.now
    if left <= .zero { return 0 }
    let (seconds, attoseconds) = left.components
    let millis = seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1
    return Int32(clamping: millis)
}

func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// The status line and headers of an HTTP/1.1 response.
struct HTTPHead: Sendable {
    let status: Int
    /// Header names in lower case, in the order received.
    let headers: [(name: String, value: String)]

    func header(_ name: String) -> String? {
        headers.first { $0.name == name }?.value
    }

    var isChunked: Bool {
        header("transfer-encoding")?.lowercased().contains("chunked") ?? false
    }
}

/// One blocking HTTP/1.1 exchange over a TCP socket (Glibc, no Foundation
/// networking): connect, send one request, read the response, with a
/// deadline for every step. The socket is close-on-exec (tests and services
/// start child processes) and never raises SIGPIPE.
///
/// Not thread-safe, except `shutdown()`, which another thread may call to
/// wake a blocked read (a watch being cancelled).
final class HTTPConnection {
    let endpoint: Endpoint
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var closed = false

    /// At most this much of a response head (status line and headers).
    static let maxHeadBytes = 64 * 1024
    /// At most this much of a response body.
    static let maxBodyBytes = 64 * 1024 * 1024

    private init(endpoint: Endpoint, fd: Int32) {
        self.endpoint = endpoint
        self.fd = fd
    }

    deinit { close() }

    /// Resolves `endpoint` and connects to the first address that accepts
    /// before `deadline`. Failures are `.notSent`.
    static func connect(to endpoint: Endpoint, deadline: Deadline) throws(TransportFailure) -> HTTPConnection {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard status == 0, let first = list else {
            let why = status == EAI_SYSTEM ? errnoText() : String(cString: gai_strerror(status))
            throw TransportFailure(phase: .notSent, reason: "cannot resolve \(endpoint.host): \(why)")
        }
        defer { freeaddrinfo(list) }
        var reasons: [String] = []
        var current: UnsafeMutablePointer<addrinfo>? = first
        while let info = current {
            current = info.pointee.ai_next
            do {
                let fd = try connectOne(info.pointee, deadline: deadline)
                return HTTPConnection(endpoint: endpoint, fd: fd)
            } catch {
                reasons.append(error.reason)
            }
        }
        throw TransportFailure(phase: .notSent, reason: reasons.joined(separator: "; "))
    }

    private static func connectOne(_ info: addrinfo, deadline: Deadline) throws(TransportFailure) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)
        let fd = socket(info.ai_family, type, 0)
        guard fd >= 0 else { throw TransportFailure(phase: .notSent, reason: "socket: \(errnoText())") }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if Glibc.connect(fd, info.ai_addr, info.ai_addrlen) != 0 {
            guard errno == EINPROGRESS else {
                throw TransportFailure(phase: .notSent, reason: "connect: \(errnoText())")
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = pollRetrying(&pfd, deadline)
            if ready == 0 { throw TransportFailure(phase: .notSent, reason: "connect timed out") }
            if ready < 0 { throw TransportFailure(phase: .notSent, reason: "poll: \(errnoText())") }
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            if soError != 0 { throw TransportFailure(phase: .notSent, reason: "connect: \(errnoText(soError))") }
        }
        ok = true
        return fd
    }

    /// poll(2) on one descriptor, again after EINTR, until `deadline`.
    private static func pollRetrying(_ pfd: inout pollfd, _ deadline: Deadline) -> Int32 {
        while true {
            let ready = poll(&pfd, 1, pollTimeout(deadline))
            if ready < 0 && errno == EINTR { continue }
            return ready
        }
    }

    /// Turns on TCP keepalive (a watch stream may be silent for hours; this
    /// notices a peer whose host vanished): probes after `idle` seconds.
    func enableKeepalive(idle: Int32 = 10, interval: Int32 = 5, count: Int32 = 3) {
        var on: Int32 = 1, idle = idle, interval = interval, count = count
        let size = socklen_t(MemoryLayout<Int32>.size)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
    }

    /// The socket, for another thread to `shutdown(2)` (waking a blocked read)
    /// while this connection is known to be open.
    var descriptor: Int32 { fd }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }

    // MARK: - Sending

    /// Sends a POST of `body` (JSON) to `path`. Failures are `.notSent`: a
    /// request cut short carries fewer bytes than its Content-Length says,
    /// which the server never acts on.
    /// With `requireLeader`, the request carries gRPC metadata through etcd's
    /// gateway so that a member without a raft leader refuses it at once
    /// ("etcdserver: no leader", code 14) instead of timing out, and ends a
    /// watch stream when it loses its leader (checked against etcd 3.4.23).
    func sendPost(path: String, body: [UInt8], requireLeader: Bool = true, connectionClose: Bool,
                  deadline: Deadline) throws(TransportFailure) {
        var head = "POST \(path) HTTP/1.1\r\n"
        head += "Host: \(endpoint)\r\n"
        head += "Content-Type: application/json\r\n"
        head += "Accept: application/json\r\n"
        if requireLeader { head += "Grpc-Metadata-hasleader: true\r\n" }
        head += "Content-Length: \(body.count)\r\n"
        if connectionClose { head += "Connection: close\r\n" }
        head += "\r\n"
        try sendAll(Array(head.utf8) + body, deadline: deadline)
    }

    private func sendAll(_ bytes: [UInt8], deadline: Deadline) throws(TransportFailure) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 { offset += sent; continue }
            if sent < 0 && errno == EINTR { continue }
            if sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ready = Self.pollRetrying(&pfd, deadline)
                if ready == 0 { throw TransportFailure(phase: .notSent, reason: "sending the request timed out") }
                if ready < 0 { throw TransportFailure(phase: .notSent, reason: "poll: \(errnoText())") }
                continue
            }
            throw TransportFailure(phase: .notSent, reason: "send: \(errnoText())")
        }
    }

    // MARK: - Receiving

    /// Reads more bytes into the buffer; false at the end of the stream.
    private func fill(_ deadline: Deadline) throws(TransportFailure) -> Bool {
        if readIndex > 0 && readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            readIndex = 0
        }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = Self.pollRetrying(&pfd, deadline)
            if ready == 0 { throw TransportFailure(phase: .ambiguous, reason: "no answer in time") }
            if ready < 0 { throw TransportFailure(phase: .ambiguous, reason: "poll: \(errnoText())") }
            let count = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer.append(contentsOf: chunk[0..<count])
                return true
            }
            if count == 0 { return false }
            if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
            throw TransportFailure(phase: .ambiguous, reason: "receive: \(errnoText())")
        }
    }

    /// One line without its CRLF (a bare LF is accepted too).
    private func readLine(_ deadline: Deadline, limit: Int, what: String) throws(TransportFailure) -> [UInt8] {
        // Bytes after readIndex already searched; an offset, since fill() may move the buffer.
        var scanned = 0
        while true {
            if let newline = buffer[(readIndex + scanned)...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > readIndex && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = Array(buffer[readIndex..<end])
                readIndex = newline + 1
                return line
            }
            scanned = buffer.count - readIndex
            if scanned > limit {
                throw TransportFailure(phase: .ambiguous, reason: "\(what) longer than \(limit) bytes")
            }
            guard try fill(deadline) else {
                throw TransportFailure(phase: .ambiguous, reason: "connection closed in the middle of the \(what)")
            }
        }
    }

    private func readExactly(_ count: Int, _ deadline: Deadline, what: String) throws(TransportFailure) -> [UInt8] {
        while buffer.count - readIndex < count {
            guard try fill(deadline) else {
                throw TransportFailure(phase: .ambiguous,
                                       reason: "connection closed after \(buffer.count - readIndex) of \(count) bytes of the \(what)")
            }
        }
        let bytes = Array(buffer[readIndex..<readIndex + count])
        readIndex += count
        return bytes
    }

    /// The status line and headers. A peer whose first bytes are not
    /// `HTTP/1.` is not an HTTP server (so not etcd): `.notSent`.
    func readHead(_ deadline: Deadline) throws(TransportFailure) -> HTTPHead {
        // Look at the first bytes before trusting them to be a line at all.
        while buffer.count - readIndex < 8 {
            guard try fill(deadline) else {
                if buffer.count == readIndex {
                    throw TransportFailure(phase: .ambiguous, reason: "connection closed before any answer")
                }
                break
            }
        }
        let prefix = Array(buffer[readIndex..<min(buffer.count, readIndex + 7)])
        guard prefix == Array("HTTP/1.".utf8) else {
            throw TransportFailure(phase: .notSent, reason: "not an HTTP response: \(excerpt(buffer[readIndex...]))")
        }
        let budget = Self.maxHeadBytes
        let statusLine = try readLine(deadline, limit: budget, what: "response head")
        let fields = statusLine.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: true)
        guard fields.count >= 2, let status = Int(String(decoding: fields[1], as: UTF8.self)), (100...999).contains(status) else {
            throw TransportFailure(phase: .ambiguous, reason: "bad HTTP status line: \(excerpt(statusLine[...]))")
        }
        var headers: [(name: String, value: String)] = []
        var used = statusLine.count
        while true {
            let line = try readLine(deadline, limit: budget - used, what: "response head")
            used += line.count + 2
            if used > budget { throw TransportFailure(phase: .ambiguous, reason: "response head longer than \(budget) bytes") }
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw TransportFailure(phase: .ambiguous, reason: "bad HTTP header line: \(excerpt(line[...]))")
            }
            let name = String(decoding: line[..<colon], as: UTF8.self).trimmingWhitespace().lowercased()
            let value = String(decoding: line[(colon + 1)...], as: UTF8.self).trimmingWhitespace()
            headers.append((name, value))
        }
        if status / 100 == 1 { return try readHead(deadline) } // 100 Continue and the like: the real answer follows
        return HTTPHead(status: status, headers: headers)
    }

    /// The whole body after `head`: chunked, by Content-Length, or to the end of the stream.
    func readBody(_ head: HTTPHead, _ deadline: Deadline) throws(TransportFailure) -> [UInt8] {
        if head.isChunked {
            var body: [UInt8] = []
            while let chunk = try readChunk(deadline) {
                body += chunk
                if body.count > Self.maxBodyBytes { throw TransportFailure(phase: .ambiguous, reason: "response body over \(Self.maxBodyBytes) bytes") }
            }
            return body
        }
        if let text = head.header("content-length") {
            guard let length = Int(text), length >= 0 else {
                throw TransportFailure(phase: .ambiguous, reason: "bad Content-Length '\(text)'")
            }
            guard length <= Self.maxBodyBytes else {
                throw TransportFailure(phase: .ambiguous, reason: "response body of \(length) bytes is over \(Self.maxBodyBytes)")
            }
            return try readExactly(length, deadline, what: "response body")
        }
        while try fill(deadline) {
            if buffer.count - readIndex > Self.maxBodyBytes { throw TransportFailure(phase: .ambiguous, reason: "response body over \(Self.maxBodyBytes) bytes") }
        }
        let body = Array(buffer[readIndex...])
        readIndex = buffer.count
        return body
    }

    /// The next chunk of a chunked body; nil after the last (trailers are read and dropped).
    func readChunk(_ deadline: Deadline) throws(TransportFailure) -> [UInt8]? {
        let sizeLine = try readLine(deadline, limit: 1024, what: "chunk size line")
        let sizeText = String(decoding: sizeLine.prefix { $0 != UInt8(ascii: ";") }, as: UTF8.self).trimmingWhitespace()
        guard !sizeText.isEmpty, sizeText.count <= 8, let size = Int(sizeText, radix: 16), size >= 0 else {
            throw TransportFailure(phase: .ambiguous, reason: "bad chunk size line: \(excerpt(sizeLine[...]))")
        }
        if size == 0 {
            while try !readLine(deadline, limit: Self.maxHeadBytes, what: "trailer").isEmpty {}
            return nil
        }
        guard size <= Self.maxBodyBytes else {
            throw TransportFailure(phase: .ambiguous, reason: "chunk of \(size) bytes is over \(Self.maxBodyBytes)")
        }
        let data = try readExactly(size, deadline, what: "chunk")
        let end = try readLine(deadline, limit: 2, what: "chunk end")
        guard end.isEmpty else { throw TransportFailure(phase: .ambiguous, reason: "chunk not followed by CRLF") }
        return data
    }
}

/// Up to `limit` bytes as printable text, for error messages: control bytes
/// and invalid UTF-8 are shown escaped.
func excerpt(_ bytes: ArraySlice<UInt8>, limit: Int = 120) -> String {
    var out = ""
    for byte in bytes.prefix(limit) {
        switch byte {
        case UInt8(ascii: "\r"): out += "\\r"
        case UInt8(ascii: "\n"): out += "\\n"
        case UInt8(ascii: "\t"): out += "\\t"
        case 0x20..<0x7f: out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = String(byte, radix: 16)
            out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    if bytes.count > limit { out += "... (\(bytes.count) bytes)" }
    return "'\(out)'"
}
