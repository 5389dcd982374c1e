import CZeroMQ

/// A libzmq context: the I/O threads and the registry of sockets.
///
/// A context is thread-safe and shared by every socket of a process. `shutdown()`
/// makes every blocking call on its sockets fail with `ZMQError.terminated`, which
/// ends poll loops; the context is terminated when the last reference goes away,
/// which waits for every socket to be closed.
public final class ZMQContext: @unchecked Sendable {
    // The handle is only read after init; libzmq contexts are thread-safe.
    let handle: UnsafeMutableRawPointer

    /// Creates a context with `ioThreads` background I/O threads.
    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        self.handle = handle
        if ioThreads != 1 {
            try zmqCall("zmq_ctx_set(ZMQ_IO_THREADS)") { zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) }
        }
    }

    /// Makes all blocking operations on this context's sockets return `ETERM`.
    /// Safe to call from any thread and more than once.
    public func shutdown() {
        _ = zmq_ctx_shutdown(handle)
    }

    deinit {
        // Waits until every socket is closed; sockets hold a strong reference to
        // their context, so by now they are.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == ringstore_zmq_errno_eintr() {}
    }

    /// The libzmq version as (major, minor, patch).
    public static var version: (major: Int32, minor: Int32, patch: Int32) {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return (major, minor, patch)
    }
}
