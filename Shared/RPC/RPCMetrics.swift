import Basics
import CoreMetrics
import RingProtocol

/// One RPC server's metrics, through swift-metrics: requests answered by
/// method and status code (`ringstore_rpc_requests_total`), their latency
/// from receipt to answer by method (`ringstore_rpc_request_duration_seconds`),
/// and connections that closed (`ringstore_rpc_disconnects_total`: a client's
/// connection to this server, `side="server"`, seen where the server watches
/// its peers; one of this service's own connections to another, `side="client"`).
///
/// The handles are made once per method and code and kept (a lookup per
/// answer, no allocation); methods nobody registered count as `unknown`, so
/// a caller cannot make up label values.
final class RPCMetrics {
    private let service: String
    private var methods: [String: Method] = [:]
    private var unknown: Method?
    private lazy var disconnects = Counter(label: "ringstore_rpc_disconnects_total", dimensions: [("service", service), ("side", "server")])

    private final class Method {
        let name: String
        let latency: Timer
        var byCode: [Int: Counter] = [:]

        init(service: String, name: String) {
            self.name = name
            latency = Timer(label: "ringstore_rpc_request_duration_seconds", dimensions: [("service", service), ("method", name)],
                            preferredDisplayUnit: .seconds)
        }
    }

    init(service: String) {
        self.service = service
    }

    /// A method that may be called; its handles are made now.
    func register(_ method: String) {
        if methods[method] == nil { methods[method] = Method(service: service, name: method) }
    }

    /// A request to `method` was answered with `code` after `elapsed`.
    func answered(method: String, code: WireStatusCode, elapsed: Duration) {
        let entry: Method
        if let known = methods[method] {
            entry = known
        } else if let unknown {
            entry = unknown
        } else {
            entry = Method(service: service, name: "unknown")
            unknown = entry
        }
        entry.latency.recordNanoseconds(max(0, elapsed.wholeNanoseconds))
        let raw = code.rawValue
        if let counter = entry.byCode[raw] {
            counter.increment()
        } else {
            let counter = Counter(label: "ringstore_rpc_requests_total",
                                  dimensions: [("service", service), ("method", entry.name), ("code", code.name)])
            entry.byCode[raw] = counter
            counter.increment()
        }
    }

    func disconnected(count: Int) {
        disconnects.increment(by: count)
    }

    /// A connection this service made to another (a peer, placement) dropped.
    static func clientDisconnected(service: String) {
        Counter(label: "ringstore_rpc_disconnects_total", dimensions: [("service", service), ("side", "client")]).increment()
    }
}
