import Foundation
import RPC
import RingProtocol
import Synchronization
import TestKit
import ZeroMQ

/// A fake replica for tests: a ROUTER that answers every request with garbage,
/// alternating between undecodable frames and a well-formed OK header echoing
/// the request id around an undecodable body. With `serverKeys` (a secured
/// cluster's server keypair) it is a CURVE server as a real replica is, so
/// the nodes' requests reach it; it accepts any client key (no ZAP handler).
final class GarbageReplica: Sendable {
    let endpoint: String
    private let requests = Mutex(0)
    private let stopped = Mutex(false)
    private let finished = Mutex(false)

    var requestCount: Int { requests.withLock { $0 } }
    var address: String { endpoint.replacingOccurrences(of: "tcp://", with: "") }

    init(serverKeys: CurveKeyPair?) throws {
        endpoint = FreePort.endpoint()
        let endpoint = self.endpoint
        let ready = Mutex<Result<Void, ZMQError>?>(nil)
        let thread = Thread { [self] in
            defer { finished.withLock { $0 = true } }
            do {
                let context = try ZMQContext()
                let router = try ZMQSocket(context: context, type: .router)
                if let serverKeys { try router.setCurveServer(serverKeys) }
                try router.bind(endpoint)
                try router.setReceiveTimeout(milliseconds: 50)
                ready.withLock { $0 = .success(()) }
                while !stopped.withLock({ $0 }) {
                    guard let frames = try router.receive(), frames.count == 4 else { continue }
                    let count = requests.withLock { $0 += 1; return $0 }
                    if count % 2 == 0 {
                        try router.send([frames[0], [], [0xFF, 0x13, 0x37], [0xDE, 0xAD]], dontWait: true)
                    } else {
                        let id = (try? WireRequestHeader(serializedBytes: frames[2]))?.requestID ?? 0
                        try router.send(Envelope.reply(to: frames[0], requestID: id, status: .ok, message: "", body: [0x0A, 0xFF, 0xFF]),
                                        dontWait: true)
                    }
                }
                router.close()
            } catch {
                ready.withLock { $0 = .failure(error as? ZMQError ?? .terminated) }
            }
        }
        thread.start()
        try waitUntilSync("the garbage replica to bind") { ready.withLock { $0 } != nil }
        if case .failure(let error)? = ready.withLock({ $0 }) { throw error }
    }

    func stop() async throws {
        stopped.withLock { $0 = true }
        try await waitUntil("the garbage replica to stop") { finished.withLock { $0 } }
    }
}
