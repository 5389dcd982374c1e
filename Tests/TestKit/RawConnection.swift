import Foundation
import Glibc

/// A plain TCP connection to a local port, for bytes no client library sends.
public final class RawConnection {
    public let fd: Int32

    /// Connects to `host` (an IPv4 address; loopback by default) and `port`;
    /// connecting gives up after 10 s.
    public init(host: String = "127.0.0.1", port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var limit = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            Glibc.close(fd)
            throw FixtureError("not an IPv4 address: \(host)")
        }
        address.sin_port = port.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            Glibc.close(fd)
            throw FixtureError("cannot connect to \(host):\(port): errno \(errno)")
        }
    }

    public func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw FixtureError("send failed: errno \(errno)") }
            offset += count
        }
    }

    /// Sends without blocking until the peer stops taking bytes (its buffers
    /// are full) or `within` passes; returns how many bytes went.
    public func sendAsMuchAsTaken(_ text: String, within: Duration) throws -> Int {
        let bytes = Array(text.utf8)
        let deadline = ContinuousClock.now + within
        var offset = 0
        var stalled = 0
        while offset < bytes.count && ContinuousClock.now < deadline && stalled < 50 {
            let count = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if count > 0 {
                offset += count
                stalled = 0
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                stalled += 1
                usleep(20_000)
            } else {
                throw FixtureError("send failed: errno \(errno)")
            }
        }
        return offset
    }

    /// Exactly `count` bytes (within 10 seconds).
    public func read(count: Int) throws -> String {
        var seconds = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &seconds, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        while received.count < count {
            let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, count - received.count, 0) }
            guard got > 0 else { throw FixtureError("read \(received.count) of \(count) bytes: errno \(errno)") }
            received += buffer[0..<got]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// What has arrived, waiting up to `within` for something (empty if nothing came).
    public func readSome(within: Duration = .milliseconds(100)) throws -> String {
        var wait = timeval(tv_sec: Int(within.components.seconds), tv_usec: Int(within.components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        let got = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return "" }
        guard got >= 0 else { throw FixtureError("read: errno \(errno)") }
        return String(decoding: buffer[0..<got], as: UTF8.self)
    }

    /// Everything the peer sends until it closes the connection.
    public func readUntilClosed(timeout: Duration) throws -> String {
        var seconds = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &seconds, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            guard count > 0 else { throw FixtureError("the connection stayed open: errno \(errno) after \(received.count) bytes") }
            received += buffer[0..<count]
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// The local port of this end (the peer sees it).
    public var localPort: UInt16 {
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: local.sin_port)
    }

    public func close() { Glibc.close(fd) }
}
