import Basics
import Foundation
import RPC
import RingProtocol

/// The Health and Echo methods that every Ringstore service answers.
public enum Diagnostics {
    /// The version every process reports.
    public static let version = RingstoreVersion.current

    /// The Health details every listed key may see.
    static let publicDetails: Set<String> = ["member_state", "role", "leader"]

    /// Registers `health` and `echo` on `server`. `details` is called on the
    /// reactor thread at each Health call for service-specific figures; with
    /// CURVE on, only an admin key gets them all (and the request counters):
    /// a client or node key learns that the service is serving, its version,
    /// its uptime, a node's `member_state` (which placement's member list
    /// shows anyone anyway) and a replica's `role` and `leader` (which its
    /// refusals tell anyone anyway), so `ringctl status --wait` works for it too.
    public static func register(
        on server: RPCServer,
        health: RPCMethod<WireHealthRequest, WireHealthReply>,
        echo: RPCMethod<WireEchoRequest, WireEchoReply>,
        service: String,
        address: String,
        details: @escaping () -> [String: String] = { [:] }
    ) {
        let started = ContinuousClock.now
        let pid = ProcessInfo.processInfo.processIdentifier
        server.register(health) { [unowned server] context, _ in
            var reply = WireHealthReply()
            reply.status = .serving
            reply.service = service
            reply.address = address
            reply.version = version
            let uptime = ContinuousClock.now - started
            reply.uptimeMillis = UInt64(max(0, uptime.wholeMilliseconds))
            reply.pid = pid
            var figures = details()
            if let caller = context.authenticated, !caller.role.allows(.admin) {
                reply.details = figures.filter { publicDetails.contains($0.key) }
                return .reply(reply)
            }
            figures["requests_served"] = "\(server.requestsServed)"
            figures["malformed_requests"] = "\(server.malformedRequests)"
            figures["denied_requests"] = "\(server.deniedRequests)"
            reply.details = figures
            return .reply(reply)
        }
        server.register(echo) { _, request in
            var reply = WireEchoReply()
            reply.payload = request.payload
            return .reply(reply)
        }
    }
}
