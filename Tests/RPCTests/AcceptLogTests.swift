import CAcceptLog
import Glibc
import TestKit
import Testing

/// CAcceptLog: the process's own `accept4` records each accepted peer's
/// address per descriptor and listening port, for the refusal logs.
struct AcceptLogTests {
    /// A listening TCP socket on a free loopback port.
    private static func listener() throws -> (descriptor: Int32, port: UInt16) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(descriptor >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(descriptor, 8) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return (descriptor, UInt16(bigEndian: address.sin_port))
    }

    private static func claim(_ descriptor: Int32, port: UInt16) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        guard ringstore_accepted_address(descriptor, UInt32(port), &buffer, buffer.count) == 1 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    @Test func anAcceptedPeersAddressIsClaimedOnceByItsListenersPortOnly() throws {
        let server = try Self.listener(), other = try Self.listener()
        defer { close(server.descriptor); close(other.descriptor) }
        let seen = ringstore_accepts_seen()
        let client = try RawConnection(port: server.port)
        defer { client.close() }
        // The process's `accept4` as libzmq's call finds it (RTLD_DEFAULT).
        typealias Accept4 = @convention(c) (Int32, UnsafeMutablePointer<sockaddr>?, UnsafeMutablePointer<socklen_t>?, Int32) -> Int32
        let symbol = try #require(dlsym(nil, "accept4"))
        let accepted = unsafeBitCast(symbol, to: Accept4.self)(server.descriptor, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        try #require(accepted >= 0)
        defer { close(accepted) }
        // The accept went through CAcceptLog's accept4 (as libzmq's do).
        #expect(ringstore_accepts_seen() == seen + 1)
        // Another listener's socket never takes it, even on the same descriptor.
        #expect(Self.claim(accepted, port: other.port) == nil)
        #expect(Self.claim(accepted, port: server.port) == "127.0.0.1:\(client.localPort)")
        #expect(Self.claim(accepted, port: server.port) == nil, "claimed once")
        var buffer = [CChar](repeating: 0, count: 64)
        #expect(ringstore_peer_address(accepted, &buffer, buffer.count) == 1)
        #expect(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) == "127.0.0.1:\(client.localPort)")
    }
}
