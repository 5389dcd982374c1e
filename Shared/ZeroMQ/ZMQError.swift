import CZeroMQ

/// An error reported by libzmq, carrying its `errno` value and message.
///
/// Built as a struct around the raw code (not an enum) so that new libzmq error
/// codes never break callers; compare against the static constants.
public struct ZMQError: Error, Equatable, Hashable, CustomStringConvertible, Sendable {
    /// The `errno` value libzmq reported.
    public let code: Int32
    /// The libzmq call that failed, for diagnostics.
    public let operation: String

    public init(code: Int32, operation: String = "") {
        self.code = code
        self.operation = operation
    }

    /// The error of the last failed libzmq call on this thread.
    static func last(_ operation: String) -> ZMQError {
        ZMQError(code: zmq_errno(), operation: operation)
    }

    public var description: String {
        let text = String(cString: zmq_strerror(code))
        return operation.isEmpty ? text : "\(operation): \(text)"
    }

    public static func == (lhs: ZMQError, rhs: ZMQError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// The operation would block (`EAGAIN`): no message, or the send queue is full.
    public static let wouldBlock = ZMQError(code: ringstore_zmq_errno_eagain())
    /// The context was shut down or terminated (`ETERM`): end the loop.
    public static let terminated = ZMQError(code: ringstore_zmq_errno_eterm())
    /// A ROUTER socket with `routerMandatory` cannot route to this peer (`EHOSTUNREACH`).
    public static let hostUnreachable = ZMQError(code: ringstore_zmq_errno_ehostunreach())
    /// The call was interrupted by a signal (`EINTR`); the funnel retries these.
    public static let interrupted = ZMQError(code: ringstore_zmq_errno_eintr())
}

/// The single funnel for every libzmq call that returns an `Int32` status.
///
/// Retries `EINTR`, throws a typed `ZMQError` built from `zmq_errno()` for
/// everything else. Callers that expect `EAGAIN` catch `ZMQError.wouldBlock`.
@inline(__always)
@discardableResult
func zmqCall(_ operation: @autoclosure () -> String, _ body: () -> Int32) throws(ZMQError) -> Int32 {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let error = zmq_errno()
        if error == ringstore_zmq_errno_eintr() { continue }
        throw ZMQError(code: error, operation: operation())
    }
}
