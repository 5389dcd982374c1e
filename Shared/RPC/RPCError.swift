import RingProtocol

/// A failed call: a gRPC-style status code and a human-readable message.
public struct RPCError: Error, Equatable, Sendable, CustomStringConvertible {
    public let code: WireStatusCode
    public let message: String
    /// True when the request never left this process (no connection before
    /// the deadline): safe to send elsewhere even for a non-idempotent method.
    public let neverSent: Bool
    /// A refusal by a replica that is not its service's leader (UNAVAILABLE):
    /// never applied, so the request may go to the leader whatever its method.
    public let notLeader: Bool
    /// With `notLeader`: the leader's request endpoint, empty while none is known.
    public let leader: String

    public init(_ code: WireStatusCode, _ message: String, neverSent: Bool = false, notLeader: Bool = false, leader: String = "") {
        self.code = code
        self.message = message
        self.neverSent = neverSent
        self.notLeader = notLeader
        self.leader = leader
    }

    /// A follower replica's refusal: not applied here; try `leader` (empty: none known yet).
    public static func notLeader(_ service: String, leader: String) -> RPCError {
        let hint = leader.isEmpty ? "no leader is elected yet; retry shortly" : "the leader is \(leader)"
        return RPCError(.unavailable, "this \(service) replica is a follower: \(hint)", notLeader: true, leader: leader)
    }

    /// The error a reply header carries.
    public init(reply header: WireReplyHeader) {
        self.init(header.code, header.message, notLeader: header.notLeader, leader: header.leader)
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
