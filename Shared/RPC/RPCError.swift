import RingProtocol

/// A failed call: a gRPC-style status code and a human-readable message.
public struct RPCError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: WireStatusCode
    public let message: String
    /// True when the request never left this process (no connection before
    /// the deadline): safe to send elsewhere even for a non-idempotent method.
    public let neverSent: Bool

    public init(_ code: WireStatusCode, _ message: String, neverSent: Bool = false) {
        self.code = code
        self.message = message
        self.neverSent = neverSent
    }

    public var description: String { "\(code.name): \(message)" }

    public static func invalidArgument(_ message: String) -> RPCError { RPCError(.invalidArgument, message) }
    public static func unimplemented(_ message: String) -> RPCError { RPCError(.unimplemented, message) }
    public static func unavailable(_ message: String) -> RPCError { RPCError(.unavailable, message) }
    public static func deadlineExceeded(_ message: String) -> RPCError { RPCError(.deadlineExceeded, message) }
    public static func notFound(_ message: String) -> RPCError { RPCError(.notFound, message) }
    public static func failedPrecondition(_ message: String) -> RPCError { RPCError(.failedPrecondition, message) }
    public static func internalError(_ message: String) -> RPCError { RPCError(.internal, message) }
    public static func cancelled(_ message: String) -> RPCError { RPCError(.cancelled, message) }
}

extension WireStatusCode {
    /// The upper-case gRPC name, e.g. `INVALID_ARGUMENT`.
    public var name: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .UNRECOGNIZED(let value): "STATUS_\(value)"
        }
    }
}
