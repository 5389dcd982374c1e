import Basics
import Foundation
import Logging
import RPC
import RingProtocol
import StorageEngine

/// The coordinator every node runs: the shell around ``Replication``. It takes
/// Put, Get and Delete from clients, hands them to the replication core, and
/// carries out what the core decides: stamping versions with the node's clock,
/// writing and reading replicas (the local store in this turn's group commit,
/// peers through the ``ReplicaOutbox``), hinted handoff and read repair, and
/// the replies. It also answers other coordinators' replica requests
/// (Coordinator+ReplicaRequests.swift). Runs entirely on the node's reactor thread.
final class Coordinator {
    let address: String
    let store: LocalStore
    let options: StorageNodeOptions
    private let peers: PeerClients
    /// The node's clock; migration and anti-entropy admit remote rows through it too.
    let clock: NodeClock
    let ringView: () -> RingView?
    /// Called when a replica answered from a newer plan than this node's.
    var onNewerPlan: () -> Void = {}
    var logger: Logger
    weak var rpc: RPCServer?
    private var core: Replication<ClientReply>
    private var outbox: ReplicaOutbox!

    /// How a client request's outcome reaches its caller.
    struct ClientReply {
        let send: (Replication<ClientReply>.Outcome) -> Void
    }

    init(address: String, store: LocalStore, peers: PeerClients, options: StorageNodeOptions,
         logger: Logger, ringView: @escaping () -> RingView?) {
        self.address = address
        self.store = store
        self.peers = peers
        self.options = options
        self.logger = logger
        self.ringView = ringView
        clock = NodeClock(maximumDrift: options.maxClockDrift, logger: logger)
        // The address names the writer; the start time keeps a restarted node
        // whose wall clock went backwards from ever reusing a version.
        let writer = Self.fnv1a(Array(address.utf8)) ^ UInt64(WallClock.micros)
        core = Replication(settings: Replication.Settings(
            address: address, writer: writer,
            maxKeyBytes: options.maxKeyBytes, maxValueBytes: options.maxValueBytes))
        outbox = ReplicaOutbox(peers: peers, timeout: options.replicaTimeout, maxValueBytes: options.maxValueBytes) {
            [unowned self] records, replica, plan, then in send(records, to: replica, plan: plan, then: then)
        }
    }

    func register(on rpc: RPCServer) {
        self.rpc = rpc
        rpc.register(StorageMethods.put) { [unowned self] context, request in
            var write = Replication<ClientReply>.Write(key: [UInt8](request.key), value: [UInt8](request.value), quorum: request.quorum)
            write.ifVersion = request.hasIfVersion ? Version(wire: request.ifVersion) : nil
            write.ifAbsent = request.ifAbsent
            write.fence = request.hasFence ? request.fence : nil
            return coordinate(context, write, seen: request.seenTimestamp) { version, acks in
                WirePutReply.with { $0.version = version.wire; $0.acks = UInt32(acks) }
            }
        }
        rpc.register(StorageMethods.delete) { [unowned self] context, request in
            let write = Replication<ClientReply>.Write(key: [UInt8](request.key), value: nil, quorum: request.quorum)
            return coordinate(context, write, seen: request.seenTimestamp) { version, acks in
                WireDeleteReply.with { $0.version = version.wire; $0.acks = UInt32(acks) }
            }
        }
        rpc.register(StorageMethods.get) { [unowned self] context, request in
            read(key: [UInt8](request.key), quorum: request.quorum) { [weak self] result in
                self?.rpc?.reply(to: context, result.map { read in
                    WireGetReply.with {
                        $0.replies = UInt32(read.replies)
                        if let record = read.record, let value = record.value {
                            $0.found = true
                            $0.value = Data(value)
                            $0.version = record.version.wire
                        }
                    }
                })
            }
            return HandlerOutcome<WireGetReply>.parked
        }
        rpc.register(StorageMethods.replicaWrite, role: .node) { [unowned self] context, request in replicaWrite(context, request) }
        rpc.register(StorageMethods.replicaRead, role: .node) { [unowned self] _, request in replicaRead(request) }
    }

    /// Sends this turn's queued replica reads and writes; runs at the end of every reactor turn.
    func flushReplicaTraffic() {
        outbox.flush()
    }

    // MARK: Client requests

    /// A put or delete. `seen` is the client's session context: its write is stamped after that timestamp.
    private func coordinate<Reply>(_ context: RequestContext, _ write: Replication<ClientReply>.Write, seen: UInt64,
                                   makeReply: @escaping (Version, Int) -> Reply) -> HandlerOutcome<Reply> {
        if seen > 0, !clock.admit(seen, from: "client \(context.caller)") {
            return .failure(.invalidArgument("seen_timestamp: \(clock.refusal(seen))"))
        }
        self.write(write) { [weak self] result in
            self?.rpc?.reply(to: context, result.map { makeReply($0.version, $0.acks) })
        }
        return .parked
    }

    // MARK: Coordinated requests

    /// A client's put or delete (from RPC or the RESP front door); `done`
    /// runs on the reactor thread with the version written and the acks.
    func write(_ write: Replication<ClientReply>.Write, done: @escaping (Result<(version: Version, acks: Int), RPCError>) -> Void) {
        let reply = ClientReply { outcome in
            switch outcome {
            case .written(let version, let acks): done(.success((version, acks)))
            case .failed(let error): done(.failure(error))
            case .read: done(.failure(.internalError("a write ended as a read")))
            }
        }
        withCore { $0.write(write, token: reply) }
    }

    /// A client's quorum read; `done` gets the newest record the quorum held
    /// (a tombstone or nil when there is none) and how many replicas answered.
    func read(key: [UInt8], quorum: WireQuorum = WireQuorum(),
              done: @escaping (Result<(record: VersionedRecord?, replies: Int), RPCError>) -> Void) {
        let reply = ClientReply { outcome in
            switch outcome {
            case .read(let record, let replies): done(.success((record, replies)))
            case .failed(let error): done(.failure(error))
            case .written: done(.failure(.internalError("a read ended as a write")))
            }
        }
        withCore { $0.get(key: key, quorum: quorum, token: reply) }
    }

    // MARK: Carrying out the core's directives

    /// Calls the core with the node's current view (the ring and member states move
    /// on between a request and its answers), then carries out what it decided.
    private func withCore(_ call: (inout Replication<ClientReply>) -> [Replication<ClientReply>.Directive]) {
        core.view = ringView()
        run(call(&core))
    }

    private func run(_ directives: [Replication<ClientReply>.Directive]) {
        for directive in directives {
            switch directive {
            case .stamp(let id, let after):
                if let after { _ = clock.admit(after, from: "a quorum read") }
                withCore { $0.stamped(id, timestamp: clock.now()) }
            case .write(let id, let record, let replica, let plan):
                if replica == address, !keepsLocally(record, routedBy: plan) {
                    withCore { $0.written(id, by: replica, .notReplica(plan: ringView()?.planVersion ?? 0)) }
                } else if replica == address {
                    store.enqueue([record]) { [unowned self] result in
                        let answer: Replication<ClientReply>.WriteAnswer
                        switch result {
                        case .success(let applied):
                            if case .refused(let highest)? = applied.first { answer = .refused(highestToken: highest) } else { answer = .acknowledged }
                        case .failure(let error): answer = .failed("local commit failed: \(error)")
                        }
                        withCore { $0.written(id, by: replica, answer) }
                    }
                } else {
                    outbox.write(record, to: replica, plan: plan) { [unowned self] result in
                        let answer: Replication<ClientReply>.WriteAnswer
                        switch result {
                        case .success(let reply) where reply.refusedBelow > 0: answer = .refused(highestToken: reply.refusedBelow)
                        case .success(let reply) where reply.notReplica: answer = .notReplica(plan: reply.planVersion)
                        case .success: answer = .acknowledged
                        case .failure(let error): answer = .failed(error.description)
                        }
                        withCore { $0.written(id, by: replica, answer) }
                    }
                }
            case .read(let id, let key, let replica):
                if replica == address {
                    do {
                        let record = try store.engine.get(key: key)
                        withCore { $0.answered(id, by: replica, record) }
                    } catch {
                        withCore { $0.readFailed(id, by: replica, "local read failed: \(error)") }
                    }
                } else {
                    outbox.read(key, from: replica) { [unowned self] result in
                        switch result {
                        case .success(let answer) where !answer.found:
                            withCore { $0.answered(id, by: replica, nil) }
                        case .success(let answer):
                            if let record = try? VersionedRecord(wire: answer.record) {
                                withCore { $0.answered(id, by: replica, record) }
                            } else {
                                withCore { $0.readFailed(id, by: replica, "undecodable record") }
                            }
                        case .failure(let error):
                            withCore { $0.readFailed(id, by: replica, error.description) }
                        }
                    }
                }
            case .hint(let record, let target, let standIn):
                if standIn == address {
                    store.enqueueHint(record, for: target)
                } else {
                    send([record], to: standIn, hintFor: target) { [unowned self] result in
                        if case .failure = result { withCore { $0.standInFailed(record, for: target) } }
                    }
                }
            case .repair(let record, let replica, let plan):
                logger.debug("node.read_repair", metadata: ["repair.replica": "\(replica)"])
                if replica == address {
                    if keepsLocally(record, routedBy: plan) { store.enqueue([record]) { _ in } }
                } else {
                    outbox.write(record, to: replica, plan: plan) { _ in }
                }
            case .reply(let reply, let outcome):
                reply.send(outcome)
            }
        }
    }

    /// Whether this node stores a record routed to it by plan version `plan`: always
    /// under its own plan; under an older one only if it still keeps the key (it may
    /// have swept the key's arc since, and nothing would sweep the record again),
    /// the rule it applies to other coordinators' replica writes.
    func keepsLocally(_ record: VersionedRecord, routedBy plan: UInt64) -> Bool {
        guard let view = ringView(), plan > 0, plan < view.planVersion else { return true }
        return view.keeps(key: record.key, address: address)
    }

    /// Sends records to a replica with ReplicaWrite, stamped with the plan version
    /// they were routed by (this node's current one unless given).
    func send(_ records: [VersionedRecord], to replica: String, hintFor target: String = "", plan: UInt64? = nil,
              then: @escaping (Result<WireReplicaWriteReply, RPCError>) -> Void) {
        guard let client = peers.client(for: replica) else {
            then(.failure(.unavailable("no client for \(replica)")))
            return
        }
        let request = WireReplicaWriteRequest.with {
            $0.records = records.map(\.wire)
            $0.hintFor = target
            $0.planVersion = plan ?? ringView()?.planVersion ?? 0
        }
        client.call(StorageMethods.replicaWrite, request, timeout: options.replicaTimeout) { [weak self] result in
            // A replica on a newer plan: fetch the ring rather than wait for its event.
            if case .success(let reply) = result, let self, reply.planVersion > (ringView()?.planVersion ?? 0) { onNewerPlan() }
            then(result)
        }
    }

    /// Why a key (and value) cannot be stored, by this node's limits; `nil` when it can.
    func validate(key: [UInt8], value: [UInt8]?) -> RPCError? {
        core.settings.problem(key: key, value: value)
    }

    private static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
