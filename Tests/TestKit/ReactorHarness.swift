import Foundation
import Logging
import RPC
import Synchronization
import ZeroMQ

/// Runs a reactor on its own thread inside the test process, with whatever
/// sockets and handlers `setup` creates there, until `stop()`.
public final class ReactorHarness: Sendable {
    /// What `setup` reported, typically the bound endpoint.
    public let endpoint: String
    private let handle: ReactorHandle
    private let finished: Flag
    private let box: OwnerBox

    /// Starts the reactor; `setup` runs on its thread and returns the object that
    /// owns the sockets (kept alive until the loop ends) and the endpoint.
    /// `logger` replaces the default one (at `logLevel`), e.g. a `LogCapture`'s.
    public init(logLevel: Logger.Level = .critical, logger: Logger? = nil,
                setup: @escaping @Sendable (Reactor) throws -> (AnyObject, String)) async throws {
        let logger = logger ?? { () -> Logger in
            var logger = Logger(label: "test.reactor")
            logger.logLevel = logLevel
            return logger
        }()
        let finished = Flag()
        self.finished = finished
        let box = OwnerBox()
        self.box = box
        let started: (ReactorHandle, String) = try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                defer { finished.set() }
                let reactor: Reactor
                var owner: AnyObject?
                do {
                    reactor = try Reactor(context: try ZMQContext(), logger: logger)
                    let (object, endpoint) = try setup(reactor)
                    owner = object
                    box.owner = object
                    continuation.resume(returning: (reactor.handle, endpoint))
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                try? reactor.run()
                withExtendedLifetime(owner) {}
                box.owner = nil
                owner = nil
            }
            thread.start()
        }
        (handle, endpoint) = started
    }

    /// Runs `work` on the reactor thread.
    public func post(_ work: @escaping @Sendable (Reactor) -> Void) { handle.post(work) }

    /// Runs `work` on the reactor thread with the object `setup` returned.
    public func withOwner<Owner: AnyObject>(as type: Owner.Type, _ work: @escaping @Sendable (Owner) -> Void) {
        let box = self.box
        handle.post { _ in
            if let owner = box.owner as? Owner { work(owner) }
        }
    }

    /// Stops the loop and waits until its thread released its sockets.
    public func stop() async throws {
        handle.stop()
        try await waitUntil("reactor thread to finish", timeout: .seconds(10)) { finished.isSet }
    }
}

/// A flag one thread sets and another reads.
final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

/// The object a harness's setup returned; touched only on the reactor thread.
final class OwnerBox: @unchecked Sendable {
    var owner: AnyObject?
}
