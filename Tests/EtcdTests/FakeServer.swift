import Foundation
import Glibc
import Synchronization
import TestKit

/// A tiny TCP listener on 127.0.0.1 that plays a broken etcd: for every
/// connection it reads the request (head and Content-Length body), then
/// writes `reply` and closes, or, with `reply` nil, says nothing and keeps
/// the connection open until `stop()`.
final class FakeServer: Sendable {
    let port: UInt16
    private let listener: Int32
    private let reply: [UInt8]?
    private let state = Mutex<(stopped: Bool, held: [Int32], requests: Int)>((false, [], 0))
    private let finished = Mutex<Bool>(false)

    init(reply: [UInt8]?) throws {
        self.reply = reply
        (listener, port) = try LoopbackListener.open(what: "fake server")
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    convenience init(_ text: String) throws { try self.init(reply: Array(text.utf8)) }

    /// An HTTP/1.1 answer with `status` and `body` (Content-Length framing).
    static func http(status: Int = 200, _ body: String, headers: String = "Content-Type: application/json\r\n") -> String {
        "HTTP/1.1 \(status) X\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    var endpoint: String { "127.0.0.1:\(port)" }
    var requests: Int { state.withLock { $0.requests } }

    private func serve() {
        while !state.withLock({ $0.stopped }) {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 20) > 0 else { continue }
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { continue }
            _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
            readRequest(connection)
            state.withLock { $0.requests += 1 }
            if let reply {
                var offset = 0
                while offset < reply.count {
                    let sent = reply[offset...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if sent <= 0 { break }
                    offset += sent
                }
                close(connection)
            } else {
                state.withLock { $0.held.append(connection) }
            }
        }
        let held = state.withLock { $0.held }
        for fd in held { close(fd) }
        close(listener)
        finished.withLock { $0 = true }
    }

    /// Reads the head and as much body as Content-Length says (2 s at most).
    private func readRequest(_ fd: Int32) {
        var data: [UInt8] = []
        let deadline = ContinuousClock.now + .seconds(2)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            if let headEnd = data.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: data[..<headEnd.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if data.count - headEnd.upperBound >= length { return }
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return }
            data += buffer[0..<count]
        }
    }

    /// Stops listening and closes every connection it held; waits for its thread.
    func stop() {
        state.withLock { $0.stopped = true }
        let deadline = ContinuousClock.now + .seconds(5)
        while !finished.withLock({ $0 }) && ContinuousClock.now < deadline { usleep(5_000) }
    }
}

/// A listening TCP socket on 127.0.0.1 and a free port, for the tests' own
/// servers (the fake etcd and the cuttable proxy).
enum LoopbackListener {
    static func open(what: String) throws -> (descriptor: Int32, port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("\(what): socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw FixtureError("\(what): bind/listen failed: errno \(errno)")
        }
        return (fd, UInt16(bigEndian: address.sin_port))
    }
}
