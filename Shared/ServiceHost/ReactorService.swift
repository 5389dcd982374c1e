import Basics
import Foundation
import Logging
import RPC
import ServiceLifecycle
import Synchronization
import ZeroMQ

/// Runs a reactor on a thread of its own as a swift-service-lifecycle `Service`:
/// `run()` returns when the reactor stops, and a graceful shutdown (SIGTERM,
/// SIGINT through the `ServiceGroup`) stops the reactor after its current turn.
///
/// `setup` runs on the reactor thread before the loop starts: it binds the
/// sockets, registers handlers and timers, and returns the object that owns
/// them, which is kept alive until the loop ends and then released on that
/// same thread, closing its sockets.
public final class ReactorService: Service, Sendable {
    public typealias Setup = @Sendable (Reactor) throws -> AnyObject

    private let name: String
    private let logger: Logger
    private let setup: Setup
    private let control = Mutex<(handle: ReactorHandle?, stopRequested: Bool)>((nil, false))

    public init(name: String, logger: Logger, setup: @escaping Setup) {
        self.name = name
        self.logger = logger
        self.setup = setup
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread { [self] in
                    do {
                        try runLoop()
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = name
                thread.start()
            }
        } onGracefulShutdown: { [self] in
            stop()
        }
    }

    /// Stops the reactor (or keeps it from starting); safe from any thread.
    public func stop() {
        let handle = control.withLock { state -> ReactorHandle? in
            state.stopRequested = true
            return state.handle
        }
        handle?.stop()
    }

    private func runLoop() throws {
        let context = try ZMQContext()
        let reactor = try Reactor(context: context, logger: logger, service: name)
        let stopNow = control.withLock { state -> Bool in
            state.handle = reactor.handle
            return state.stopRequested
        }
        if stopNow { return }
        var owner: AnyObject? = try setup(reactor)
        try reactor.run()
        withExtendedLifetime(owner) {}
        owner = nil
        logger.info("service.stopped", metadata: ["service.name": "\(name)"])
    }
}

/// Runs services until SIGTERM or SIGINT, then shuts them down gracefully.
public enum ServiceRunner {
    public static func run(_ services: [any Service], logger: Logger) async throws {
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }

    /// First thing in a service's `run()`, once per process: swift-log writes
    /// one line per event to stderr at `level`, in `format`, and SIGHUP never ends the process from
    /// here on (it re-reads the allowlist once CURVE is set up; an operator's
    /// `kill -HUP` of every service must not stop one that has no allowlist
    /// or has not got to it yet).
    public static func prepare(logLevel level: Logger.Level, format: LogFormat = .text) throws {
        LoggingSystem.bootstrap { label in
            LineLogHandler(label: label, level: level, format: format)
        }
        _ = try hangup.get()
    }

    /// Catches SIGHUP for the life of the process; other watchers (the
    /// allowlist reloader) act on it.
    private static let hangup = Result { () throws(SignalWatchError) in try SignalWatch([SIGHUP]) { _ in } }
}
