import Foundation
import Glibc
import Synchronization
import TestKit

/// A TCP forwarder on 127.0.0.1 to one target port, which a test can cut:
/// `cut()` closes every connection through it and, until `resume()`, closes
/// new ones at once (before any byte). So a watch through it is down for
/// exactly as long as the test says, while the test writes to etcd directly.
final class CuttableProxy: Sendable {
    let port: UInt16
    private let target: UInt16
    private let listener: Int32
    private let state = Mutex<(cut: Bool, stopped: Bool, open: Set<Int32>, threads: Int)>((false, false, [], 0))

    init(to target: UInt16) throws {
        self.target = target
        (listener, port) = try LoopbackListener.open(what: "proxy")
        state.withLock { $0.threads = 1 }
        Thread { [self] in acceptLoop() }.start()
    }

    var endpoint: String { "127.0.0.1:\(port)" }

    /// Closes every forwarded connection; new ones are closed at once until `resume()`.
    func cut() {
        state.withLock { state in
            state.cut = true
            for fd in state.open { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    func resume() { state.withLock { $0.cut = false } }

    /// Stops listening and forwarding; waits for its threads.
    func stop() {
        state.withLock { state in
            state.stopped = true
            for fd in state.open { shutdown(fd, Int32(SHUT_RDWR)) }
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while state.withLock({ $0.threads }) > 0 && ContinuousClock.now < deadline { usleep(5_000) }
    }

    private func acceptLoop() {
        defer {
            close(listener)
            state.withLock { $0.threads -= 1 }
        }
        while !state.withLock({ $0.stopped }) {
            var pfd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 20) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            if state.withLock({ $0.cut }) {
                close(client)
                continue
            }
            guard let upstream = connectTarget() else {
                close(client)
                continue
            }
            let admitted = state.withLock { state -> Bool in
                guard !state.cut && !state.stopped else { return false }
                state.open.formUnion([client, upstream])
                state.threads += 1
                return true
            }
            guard admitted else {
                close(client)
                close(upstream)
                continue
            }
            Thread { [self] in pump(client, upstream) }.start()
        }
    }

    private func connectTarget() -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = target.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Copies bytes both ways until either side ends or the proxy cuts.
    private func pump(_ a: Int32, _ b: Int32) {
        defer {
            state.withLock { state in
                state.open.subtract([a, b])
                state.threads -= 1
            }
            close(a)
            close(b)
        }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        while true {
            guard poll(&fds, 2, 100) >= 0 else { return }
            if state.withLock({ $0.stopped }) { return }
            for (index, entry) in fds.enumerated() where entry.revents != 0 {
                let from = entry.fd, to = index == 0 ? b : a
                let count = buffer.withUnsafeMutableBytes { recv(from, $0.baseAddress, $0.count, 0) }
                if count <= 0 { return }
                var offset = 0
                while offset < count {
                    let sent = buffer[offset..<count].withUnsafeBytes { send(to, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if sent <= 0 { return }
                    offset += sent
                }
            }
        }
    }
}
