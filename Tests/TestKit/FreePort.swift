#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Free TCP ports on loopback for tests, so that parallel runs never collide
/// with each other or with a local cluster on the default ports.
///
/// A test picks a port before the process that listens on it starts. A port
/// from the kernel's ephemeral range (what a bind to port 0 returns) could be
/// taken meanwhile by any outgoing connection, which gets its local port from
/// that same range: seen as a service that never came up in a fresh-clone
/// `make test`. So ports come from just below the ephemeral range, where no
/// outgoing connection ever lands, handed out in turn from an offset chosen
/// per process, each checked with a bind before it is returned.
public enum FreePort {
    /// The ports handed out: `span` ports just below the ephemeral range.
    private static let range: Range<Int> = {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
        let low = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap { Int($0) } ?? 32768
        let upper = max(low, 2048)
        return max(1024, upper - span)..<upper
    }()
    private static let span = 12_000
    /// The next candidate, as an offset into `range`; it starts at a place chosen by the process id.
    private static let next = Atomic<Int>(Int(getpid()) &* 7919)

    /// A port below the ephemeral range that nothing listened on a moment ago.
    public static func allocate() -> UInt16 {
        for _ in 0..<range.count {
            let offset = next.wrappingAdd(1, ordering: .relaxed).oldValue
            let port = range.lowerBound + ((offset % range.count) + range.count) % range.count
            if isFree(UInt16(port)) { return UInt16(port) }
        }
        preconditionFailure("no free port in \(range)")
    }

    /// Whether a listener could bind 127.0.0.1:`port` now.
    private static func isFree(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0, "socket() failed")
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// `tcp://127.0.0.1:<free port>`.
    public static func endpoint() -> String { "tcp://127.0.0.1:\(allocate())" }
}
