import Foundation
import RPC
import TestKit
import ZeroMQ

/// A one-client relay between a DEALER and a service's ROUTER that passes
/// requests on at once and holds the replies until `release()`: network delay
/// on one path, to make an ordering that load produces by chance happen every
/// time. Runs on a reactor of its own.
final class ReplyHoldingProxy: Sendable {
    /// Where the client connects instead of the service.
    let endpoint: String
    private let harness: ReactorHarness

    init(to service: String) async throws {
        harness = try await ReactorHarness { reactor in
            let relay = try Relay(reactor: reactor, service: service)
            return (relay, relay.endpoint)
        }
        endpoint = harness.endpoint
    }

    /// How many replies are held.
    func held() async -> Int {
        await withCheckedContinuation { continuation in
            harness.withOwner(as: Relay.self) { continuation.resume(returning: $0.held.count) }
        }
    }

    /// Sends the held replies on, and every later one at once.
    func release() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            harness.withOwner(as: Relay.self) { relay in
                relay.release()
                continuation.resume()
            }
        }
    }

    func stop() async throws { try await harness.stop() }

    /// The sockets, on the reactor thread.
    private final class Relay {
        let endpoint: String
        private let front: ZMQSocket
        private let back: ZMQSocket
        private var client: ZMQFrame?
        private(set) var held: [[ZMQFrame]] = []
        private var holding = true

        init(reactor: Reactor, service: String) throws {
            front = try ZMQSocket(context: reactor.context, type: .router)
            endpoint = try front.bind(FreePort.endpoint())
            back = try ZMQSocket(context: reactor.context, type: .dealer)
            try back.connect(service)
            reactor.addReader(front) { [unowned self] in forwardRequests() }
            reactor.addReader(back) { [unowned self] in collectReplies() }
        }

        private func forwardRequests() {
            while let frames = try? front.receive(dontWait: true), frames.count > 1 {
                client = frames[0]
                _ = try? back.send(Array(frames.dropFirst()), dontWait: true)
            }
        }

        private func collectReplies() {
            while let frames = try? back.receive(dontWait: true) {
                if holding { held.append(frames) } else { deliver(frames) }
            }
        }

        private func deliver(_ frames: [ZMQFrame]) {
            guard let client else { return }
            _ = try? front.send([client] + frames, dontWait: true)
        }

        func release() {
            holding = false
            for frames in held { deliver(frames) }
            held.removeAll()
        }
    }
}
