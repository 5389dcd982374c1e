import CoreMetrics
import Foundation
import RPC
import Ring
import RingProtocol
import ServiceHost
import SwiftProtobuf

/// Placement's operations port: the probes and metrics every service has,
/// plus the live status page (`/`), the cluster as JSON (`/api/cluster`) and
/// the event stream as server-sent events (`/events`), fed by every event
/// placement publishes on its PUB socket, in the same order, with the same
/// sequence numbers.
public final class PlacementOperations {
    public let endpoint: OperationsEndpoint
    private let reactor: Reactor
    private let snapshot: () -> WireSnapshotReply
    /// The leader's endpoint while this replica follows ("" if none known); nil while it leads.
    private let following: () -> String?
    private var streams: [ObjectIdentifier: HTTPStream] = [:]
    /// The last events, replayed to a page that connects, so that it opens on
    /// recent history rather than an empty log.
    private var recent: [(id: String, json: String)] = []
    static let recentKept = 100
    private var keepAlive: Int?
    private let membersByState: [(state: WireMemberState, gauge: Gauge)]
    private let ringEpoch = Gauge(label: "ringstore_ring_epoch")
    private let clusterEpoch = Gauge(label: "ringstore_cluster_epoch")
    private let missedToSuspect = Counter(label: "ringstore_heartbeats_missed_total", dimensions: [("became", "suspect")])
    private let missedToDown = Counter(label: "ringstore_heartbeats_missed_total", dimensions: [("became", "down")])

    init(reactor: Reactor, settings: OperationsSettings, events: EventPublisher, following: @escaping () -> String? = { nil },
         snapshot: @escaping () -> WireSnapshotReply) throws {
        self.reactor = reactor
        self.snapshot = snapshot
        self.following = following
        endpoint = try OperationsEndpoint(reactor: reactor, settings: settings) { nil }
        membersByState = [WireMemberState.up, .suspect, .down, .leaving].map { state in
            (state, Gauge(label: "ringstore_members", dimensions: [("state", state.name)]))
        }
        endpoint.onScrape { [unowned self] in recordGauges() }
        endpoint.http.route("/") { _ in
            .response(HTTPResponse(status: 200, contentType: "text/html; charset=utf-8", body: Array(StatusPage.html.utf8)))
        }
        endpoint.http.route("/api/cluster") { [unowned self] _ in
            // A follower replica has no state of its own: it says who leads.
            if let leader = following() {
                let body = "{\"follower\":true,\"leader\":\(Self.jsonString(leader))}"
                return .response(HTTPResponse(status: 503, contentType: "application/json", body: Array(body.utf8)))
            }
            return .response(HTTPResponse(status: 200, contentType: "application/json", body: Array(clusterJSON().utf8)))
        }
        endpoint.http.route("/events") { [unowned self] _ in
            .stream(contentType: "text/event-stream") { [unowned self] stream in open(stream) }
        }
        events.observe { [unowned self] event in published(event) }
    }

    func start() {
        endpoint.start()
        // A comment now and then keeps proxies from closing a quiet stream.
        keepAlive = reactor.every(.seconds(15)) { [unowned self] in
            for stream in streams.values { stream.send(Array(": keep-alive\n\n".utf8)) }
        }
    }

    /// Members, ring, plan and the stream's position (the snapshot a
    /// subscriber starts from), plus each member's arcs for the drawing:
    /// `segments` are `[first, last, member]`, the member being the primary
    /// replica of the positions `first...last`.
    func clusterJSON() -> String {
        let current = snapshot()
        let options = JSONEncodingOptions()
        let state = (try? current.jsonString(options: options)) ?? "{}"
        var segments: [String] = []
        if let ring = try? HashRing(ringInfo: current.ring), let cut = try? ring.segments(replicas: 1) {
            segments = cut.map { segment in
                "[\(segment.range.lowerBound),\(segment.range.upperBound),\(Self.jsonString(segment.replicas.first?.address ?? ""))]"
            }
        }
        return "{\"snapshot\":\(state),\"segments\":[\(segments.joined(separator: ","))]}"
    }

    private func open(_ stream: HTTPStream) {
        let id = ObjectIdentifier(stream)
        streams[id] = stream
        stream.onClose = { [weak self] in self?.streams[id] = nil }
        let current = snapshot()
        // The browser reconnects after 2 s; the hello says which incarnation
        // of placement's stream this is, so the page knows to start over.
        stream.send(Array("retry: 2000\n\n".utf8))
        stream.sendEvent("{\"incarnation\":\"\(current.incarnation)\"}", event: "hello")
        for event in recent { stream.sendEvent(event.json, event: "ringstore", id: event.id) }
    }

    private func published(_ event: WireEvent) {
        if event.type == "member_suspect" { missedToSuspect.increment() }
        if event.type == "member_down" { missedToDown.increment() }
        guard let json = try? event.jsonString() else { return }
        let id = "\(event.topic):\(event.seq)"
        recent.append((id, json))
        if recent.count > Self.recentKept { recent.removeFirst(recent.count - Self.recentKept) }
        for stream in streams.values { stream.sendEvent(json, event: "ringstore", id: id) }
    }

    private func recordGauges() {
        // Only the leader knows the cluster; a follower would report it empty.
        guard following() == nil else { return }
        let current = snapshot()
        for (state, gauge) in membersByState {
            gauge.record(current.members.filter { $0.state == state }.count)
        }
        ringEpoch.record(Int64(current.ring.ringEpoch))
        clusterEpoch.record(Int64(current.epoch))
    }

    static func jsonString(_ text: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed, .withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
        return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
    }
}
