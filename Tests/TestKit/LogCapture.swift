import Logging
import Synchronization

/// Keeps every line logged through its `logger`, for tests that assert on
/// what a component logged (`ReactorHarness(logger:)`).
public final class LogCapture: Sendable {
    public struct Line: Sendable {
        public let level: Logger.Level
        public let message: String
        public let metadata: [String: String]
    }

    private let lines = Mutex<[Line]>([])

    public init() {}

    /// A logger at `level` whose lines this capture keeps.
    public func logger(level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: "test.capture") { _ in Handler(capture: self) }
        logger.logLevel = level
        return logger
    }

    /// The lines logged so far with message `message`.
    public func lines(_ message: String) -> [Line] {
        lines.withLock { $0.filter { $0.message == message } }
    }

    fileprivate func append(_ line: Line) {
        lines.withLock { $0.append(line) }
    }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var metadataProvider: Logger.MetadataProvider?
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.append(Line(level: event.level, message: event.message.description,
                                metadata: merged.mapValues { $0.description }))
        }
    }
}
