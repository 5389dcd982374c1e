import Logging
import ZeroMQ

/// The ZeroMQ Authentication Protocol (ZAP, RFC 27) handler of one context:
/// every CURVE handshake on a socket of that context asks it whether the
/// client's public key may connect. It answers from the allowlist as it is
/// at that moment (so a reload takes effect at the next handshake), accepts
/// only listed keys, and names the peer by its public key, which a server
/// then reads as the message property `User-Id`.
///
/// Runs on the reactor that owns the context's sockets: one REP socket bound
/// at `inproc://zeromq.zap.01`, the endpoint libzmq asks.
public final class ZAPHandler {
    public static let endpoint = "inproc://zeromq.zap.01"

    private let socket: ZMQSocket
    private let logger: Logger
    private let allowlist: () -> Allowlist
    private var refusals = RefusalLog()

    /// Serves ZAP for `reactor`'s context with the keys `allowlist()` returns.
    public init(reactor: Reactor, allowlist: @escaping () -> Allowlist) throws(ZMQError) {
        socket = try ZMQSocket(context: reactor.context, type: .rep)
        try socket.setLinger(milliseconds: 0)
        _ = try socket.bind(Self.endpoint)
        logger = reactor.logger
        self.allowlist = allowlist
        reactor.addReader(socket) { [unowned self] in drain() }
    }

    private func drain() {
        drainWaiting(logger: logger, failure: "zap.receive.failed", receive: { () throws(ZMQError) in
            try socket.receive(dontWait: true)
        }, handle: { request in
            let reply = answer(request)
            do {
                _ = try socket.send(reply, dontWait: true)
            } catch {
                logger.error("zap.reply.failed", metadata: ["zmq.error": "\(error)"])
            }
        })
    }

    /// The reply to one ZAP request: version, request id, status code, status
    /// text, user id, metadata.
    func answer(_ request: [ZMQFrame]) -> [ZMQFrame] {
        // Request: version, request id, domain, address, routing id, mechanism, credentials...
        guard request.count >= 6, request[0] == Array("1.0".utf8) else {
            return Self.reply(id: request.count > 1 ? request[1] : [], status: "500", text: "malformed ZAP request")
        }
        let address = String(decoding: request[3], as: UTF8.self)
        let mechanism = String(decoding: request[5], as: UTF8.self)
        guard mechanism == "CURVE" else {
            refuse(address: address, reason: "\(mechanism) mechanism (CURVE required)")
            return Self.reply(id: request[1], status: "400", text: "CURVE required")
        }
        guard request.count >= 7, let key = CurveKey(bytes: request[6]) else {
            return Self.reply(id: request[1], status: "500", text: "malformed CURVE credentials")
        }
        guard let entry = allowlist().entry(for: key) else {
            refuse(address: address, reason: "unknown key \(key)")
            return Self.reply(id: request[1], status: "400", text: "unknown key")
        }
        logger.debug("zap.accepted", metadata: ["peer.address": "\(address)", "peer.name": "\(entry.name)", "peer.role": "\(entry.role)"])
        return Self.reply(id: request[1], status: "200", text: "OK", user: key.z85)
    }

    private static func reply(id: ZMQFrame, status: String, text: String, user: String = "") -> [ZMQFrame] {
        [Array("1.0".utf8), id, Array(status.utf8), Array(text.utf8), Array(user.utf8), []]
    }

    /// Logs a refusal with the peer's address, at most once a second per
    /// address and reason (a scanner or a misconfigured client retries fast).
    private func refuse(address: String, reason: String) {
        if let suppressed = refusals.record(address: address, reason: reason, at: ContinuousClock.now) {
            logger.warning("zap.refused", metadata: ["peer.address": "\(address)", "zap.reason": "\(reason)",
                                                     "log.suppressed": "\(suppressed)"])
        }
    }
}

/// Rate limit of refusal log lines: one per address and reason per second,
/// saying how many were left out since the last.
struct RefusalLog {
    private var last: [String: (at: ContinuousClock.Instant, suppressed: Int)] = [:]

    /// The number of suppressed refusals to report with a line logged now, or
    /// nil when this one is suppressed.
    mutating func record(address: String, reason: String, at now: ContinuousClock.Instant) -> Int? {
        let key = address + " " + reason
        if let previous = last[key], now - previous.at < .seconds(1) {
            last[key] = (previous.at, previous.suppressed + 1)
            return nil
        }
        if last.count > 10_000 { last.removeAll() }
        let suppressed = last[key]?.suppressed ?? 0
        last[key] = (now, 0)
        return suppressed
    }
}
