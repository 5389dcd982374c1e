import Basics
import CoreMetrics
import Foundation
import Logging
import Prometheus
import RPC
import Synchronization

/// Where a service's operations port listens and who may read it.
public struct OperationsSettings: Sendable {
    /// `HOST:PORT` of the HTTP port.
    public var listen: String
    /// With a token, every path but the probes needs it (`Authorization:
    /// Bearer TOKEN`, or HTTP Basic with TOKEN as the password, which a
    /// browser asks for).
    public var token: String?

    public init(listen: String, token: String? = nil) {
        self.listen = listen
        self.token = token
    }
}

/// A service's operations port: `/healthz` (the reactor answers: alive),
/// `/readyz` (the service's own readiness), `/metrics` (Prometheus), and any
/// routes the service adds (placement's status page).
public final class OperationsEndpoint {
    public let http: HTTPServer
    private var scrapeHooks: [() -> Void] = []

    /// `readiness` answers nil when ready, else why not (503 with the reason).
    public init(reactor: Reactor, settings: OperationsSettings, readiness: @escaping () -> String?) throws(ListenError) {
        http = try HTTPServer(reactor: reactor, listen: settings.listen, logger: reactor.logger)
        http.openPaths = ["/healthz", "/readyz"]
        if let token = settings.token {
            let expected = Array(token.utf8)
            http.authorize = { request in Self.authorized(request, token: expected) ? nil : Self.unauthorized }
        }
        http.route("/healthz") { _ in .response(.text(200, "ok")) }
        http.route("/readyz") { _ in
            if let reason = readiness() { return .response(.text(503, "not ready: \(reason)")) }
            return .response(.text(200, "ready"))
        }
        http.route("/metrics") { [unowned self] _ in
            for hook in scrapeHooks { hook() }
            var body: [UInt8] = []
            ServiceMetrics.registry.emit(into: &body)
            return .response(HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: body))
        }
        reactor.logger.notice("http.listening", metadata: ["http.address": "\(http.address)",
                                                          "http.auth": "\(settings.token == nil ? "none" : "token")"])
    }

    /// Runs `hook` on the reactor thread before each scrape: for gauges read
    /// from the service's state (keys, members by state).
    public func onScrape(_ hook: @escaping () -> Void) {
        scrapeHooks.append(hook)
    }

    public func start() { http.start() }

    public func shutdown() { http.shutdown() }

    static let unauthorized = HTTPResponse.text(401, "this port needs the operations token (--http-token)",
                                                headers: [("WWW-Authenticate", "Basic realm=\"ringstore\", charset=\"UTF-8\"")])

    /// Whether the request carries the token, as a bearer token or as the
    /// password of HTTP Basic; compared in constant time.
    static func authorized(_ request: HTTPRequest, token: [UInt8]) -> Bool {
        guard let header = request.headers["authorization"] else { return false }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2 else { return false }
        switch parts[0].lowercased() {
        case "bearer":
            return ConstantTime.equal(Array(parts[1].utf8), token)
        case "basic":
            guard let decoded = Data(base64Encoded: String(parts[1])), let colon = decoded.firstIndex(of: UInt8(ascii: ":")) else {
                return false
            }
            return ConstantTime.equal(Array(decoded[decoded.index(after: colon)...]), token)
        default:
            return false
        }
    }
}

/// The process's metrics: swift-metrics bootstrapped once onto a Prometheus
/// registry, which `/metrics` renders. Before `bootstrap()` (in-process
/// tests) swift-metrics discards what it is given and the registry is empty.
public enum ServiceMetrics {
    public static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = Mutex(false)

    /// Request latencies are sub-millisecond to seconds.
    public static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
    ]

    /// Sends swift-metrics to `registry`; later calls do nothing.
    public static func bootstrap() {
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = latencyBuckets
        MetricsSystem.bootstrap(factory)
    }
}
