import RPC
import RingProtocol

/// What the handlers read from requests and how refusals go on the wire.
extension LockServer {
    /// Milliseconds from the wire, clamped far beyond any limit so the table refuses them.
    static func duration(millis: UInt64) -> Duration {
        .milliseconds(Int64(min(millis, 1 << 40)))
    }

    /// The session a request comes from: the caller's CURVE key (nil without CURVE).
    static func session(_ context: RequestContext) -> String? { context.authenticated?.key.z85 }

    /// Whether the caller is an admin, who may renew or release any session's lease.
    static func isAdmin(_ context: RequestContext) -> Bool { context.authenticated?.role == .admin }

    static func rpcError(_ error: LockError) -> RPCError {
        let code: WireStatusCode = switch error.kind {
        case .invalidArgument: .invalidArgument
        case .failedPrecondition: .failedPrecondition
        case .deadlineExceeded: .deadlineExceeded
        case .resourceExhausted: .resourceExhausted
        case .permissionDenied: .permissionDenied
        }
        return RPCError(code, error.message)
    }
}
