import Foundation
import RPC
import RingProtocol
import Synchronization
import TestKit

/// Methods of a replicated test service: a leader serves them, a follower
/// refuses them (as placement's and the lock service's followers will).
enum ReplicaMethods {
    /// Not idempotent: each one served is counted, so the test sees it applied once.
    static let write = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Replica/Write", idempotent: false)
    /// Idempotent.
    static let read = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Replica/Read", idempotent: true)
}

/// What a replica served, for the test to read from its own thread.
final class ReplicaRecord: Sendable {
    let writes = Counter()
    let reads = Counter()
    let refusals = Counter()
    /// Requests parked (while `park` is on).
    let parked = Counter()
}

/// One replica of the test service on its own reactor: as leader it answers
/// every request with its name (or parks them while `park` is set); as
/// follower its gate refuses everything with not_leader and the leader's
/// endpoint (empty: none elected).
final class ReplicaService {
    let name: String
    let server: RPCServer
    let record: ReplicaRecord
    var park = false
    private var parked: [RequestContext] = []

    init(reactor: Reactor, name: String, record: ReplicaRecord, endpoint: String = "tcp://127.0.0.1:*") throws {
        self.name = name
        self.record = record
        server = try RPCServer(reactor: reactor, endpoint: endpoint, maxMessageBytes: 64 * 1024)
        server.register(ReplicaMethods.write) { [unowned self] context, _ in
            _ = record.writes.increment()
            return answer(context)
        }
        server.register(ReplicaMethods.read) { [unowned self] context, _ in
            _ = record.reads.increment()
            return answer(context)
        }
    }

    private func answer(_ context: RequestContext) -> HandlerOutcome<WireEchoReply> {
        guard park else { return .reply(WireEchoReply.with { $0.payload = Data(name.utf8) }) }
        parked.append(context)
        _ = record.parked.increment()
        return .parked
    }

    /// Serves from now on.
    func lead() { server.gate = nil }

    /// Refuses everything from now on, naming `leader` (empty: none known).
    func follow(_ leader: String) {
        let refusals = record.refusals
        server.gate = { _ in
            _ = refusals.increment()
            return .notLeader("test", leader: leader)
        }
    }

    /// Starts a replica named `name`, following `leader` unless that is nil (then it leads).
    static func start(_ name: String, following leader: String? = nil, park: Bool = false,
                      record: ReplicaRecord = ReplicaRecord()) async throws -> ReactorHarness {
        try await ReactorHarness { reactor in
            let service = try ReplicaService(reactor: reactor, name: name, record: record)
            service.park = park
            if let leader { service.follow(leader) }
            return (service, service.server.endpoint)
        }
    }
}

extension WireEchoReply {
    /// The name of the replica that answered.
    var replica: String { String(decoding: payload, as: UTF8.self) }
}
