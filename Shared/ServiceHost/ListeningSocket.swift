import Glibc
import RPC

/// A non-blocking TCP listening socket, for the listeners that run on a
/// reactor next to its ZeroMQ sockets (the RESP front door, the HTTP port).
public enum ListeningSocket {
    /// Listens on `listen`, `HOST:PORT` (`[v6]:PORT`; an empty host or `*`
    /// is every IPv4 address; port 0 picks a free one). Returns the descriptor
    /// and the address actually bound. `option` names the setting in errors.
    public static func open(_ listen: String, option: String) throws(ListenError) -> (descriptor: Int32, address: String) {
        guard let colon = listen.lastIndex(of: ":"), let port = UInt16(listen[listen.index(after: colon)...]) else {
            throw ListenError("\(option): '\(listen)' is not HOST:PORT")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty || host == "*" { host = "0.0.0.0" }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let info = found else {
            throw ListenError("\(option): cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ListenError("\(option): socket: errno \(errno)") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0, Glibc.listen(fd, 511) == 0 else {
            let error = errno
            close(fd)
            throw ListenError("\(option) \(listen): cannot listen (errno \(error)\(error == EADDRINUSE ? ": address in use" : ""))")
        }
        return (fd, ConnectionAddress.local(of: fd) ?? listen)
    }

    /// Whether `listen`'s host is a loopback address (127.0.0.0/8, ::1, localhost).
    public static func isLoopback(_ listen: String) -> Bool {
        guard let colon = listen.lastIndex(of: ":") else { return false }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// A listening socket could not be opened; the message names the setting.
public struct ListenError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
