import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A thread-safe doorbell for a poll loop, built on Linux's `eventfd`.
///
/// Any thread may `wake()` it; the owning loop polls `fileDescriptor` and calls
/// `drain()` when it is readable. This is how other threads hand work to a
/// reactor without touching its sockets.
public final class Waker: Sendable {
    /// The descriptor to add to a `ZMQPoller`.
    public let fileDescriptor: Int32

    public init() throws(ZMQError) {
        let fd = ringstore_eventfd()
        guard fd >= 0 else { throw ZMQError(code: errno, operation: "eventfd") }
        fileDescriptor = fd
    }

    deinit { close(fileDescriptor) }

    /// Makes the descriptor readable; cheap and safe from any thread.
    public func wake() {
        var one: UInt64 = 1
        while write(fileDescriptor, &one, MemoryLayout<UInt64>.size) < 0 && errno == EINTR {}
    }

    /// Resets the descriptor after the loop woke up.
    public func drain() {
        var value: UInt64 = 0
        while read(fileDescriptor, &value, MemoryLayout<UInt64>.size) < 0 && errno == EINTR {}
    }
}
