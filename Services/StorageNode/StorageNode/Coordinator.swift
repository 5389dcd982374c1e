import Foundation
import Logging
import RPC
import RingProtocol
import StorageEngine

/// The coordinator every node runs: it takes Put, Get and Delete from clients,
/// sends them to the key's N replicas (itself included when it is one), and
/// answers once W acknowledged or R answered. Replicas that fail or are down
/// get a hint stored here; stale replicas found by a read are repaired.
///
/// Quorums are strict: only preference-list replicas count toward W and R, so
/// R + W > N means a read sees the latest acknowledged write. Runs entirely on
/// the node's reactor thread.
final class Coordinator {
    let address: String
    let store: LocalStore
    let options: StorageNodeOptions
    private let peers: PeerClients
    /// The node's clock; migration and anti-entropy admit remote rows through it too.
    let clock: NodeClock
    private let writer: UInt64
    private let ringView: () -> RingView?
    /// Called when a replica answered from a newer plan than this node's.
    var onNewerPlan: () -> Void = {}
    private var logger: Logger
    private weak var rpc: RPCServer?

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
        writer = Self.fnv1a(Array(address.utf8)) ^ UInt64(Date().timeIntervalSince1970 * 1_000_000)
    }

    func register(on rpc: RPCServer) {
        self.rpc = rpc
        rpc.register(StorageMethods.put) { [unowned self] context, request in
            put(context, key: [UInt8](request.key), value: [UInt8](request.value), quorum: request.quorum,
                ifVersion: request.hasIfVersion ? Version(wire: request.ifVersion) : nil, ifAbsent: request.ifAbsent,
                fence: request.hasFence ? request.fence : nil, seen: request.seenTimestamp) { result in
                result.map { version, acks in WirePutReply.with { $0.version = version.wire; $0.acks = UInt32(acks) } }
            }
        }
        rpc.register(StorageMethods.delete) { [unowned self] context, request in
            put(context, key: [UInt8](request.key), value: nil, quorum: request.quorum, ifVersion: nil, ifAbsent: false, fence: nil,
                seen: request.seenTimestamp) { result in
                result.map { version, acks in WireDeleteReply.with { $0.version = version.wire; $0.acks = UInt32(acks) } }
            }
        }
        rpc.register(StorageMethods.get) { [unowned self] context, request in get(context, request) }
        rpc.register(StorageMethods.replicaWrite) { [unowned self] context, request in replicaWrite(context, request) }
        rpc.register(StorageMethods.replicaRead) { [unowned self] _, request in replicaRead(request) }
    }

    // MARK: Client requests

    /// Put (value) or Delete (nil value), optionally conditional or fenced. `seen` is
    /// the client's session context: its write is stamped after that timestamp.
    private func put<Reply>(_ context: RequestContext, key: [UInt8], value: [UInt8]?, quorum: WireQuorum,
                            ifVersion: Version?, ifAbsent: Bool, fence wireFence: WireFence?, seen: UInt64,
                            makeReply: @escaping (Result<(Version, Int), RPCError>) -> Result<Reply, RPCError>) -> HandlerOutcome<Reply> {
        if let problem = validate(key: key, value: value) { return .failure(problem) }
        var fence: LockFence?
        if let wireFence {
            guard !wireFence.name.isEmpty, wireFence.name.utf8.count <= 256, (1...UInt64(Int64.max)).contains(wireFence.token) else {
                return .failure(.invalidArgument("a fence needs a lock name of 1...256 bytes and a token of 1...\(Int64.max)"))
            }
            fence = LockFence(name: wireFence.name, token: wireFence.token)
        }
        if seen > 0, !clock.admit(seen, from: "client \(context.caller)") {
            return .failure(.invalidArgument("seen_timestamp: \(clock.refusal(seen))"))
        }
        let plan: QuorumGroups
        do { plan = try self.plan(key: key, quorum: quorum, write: true) } catch { return .failure(error) }
        let write = { [unowned self] in
            let version = Version(timestamp: clock.now(), writer: writer)
            // Cannot fail: the key was validated as non-empty.
            guard let record = try? VersionedRecord(key: key, value: value, version: version, fence: fence) else { return }
            let pending = PendingWrite(record: record, quorum: plan) { [unowned self] result in
                rpc?.reply(to: context, makeReply(result.map { (version, $0) }))
            }
            replicate(record, pending: pending)
        }
        guard ifVersion != nil || ifAbsent else {
            write()
            return .parked
        }
        // Conditional put: a quorum read decides. Best effort, not linearizable:
        // two writers can both pass; fenced writes give mutual exclusion.
        let readQuorum = QuorumGroups(replicas: plan.replicas, groups: plan.groups, needed: max(plan.needed, options.defaultR))
        read(key: key, quorum: readQuorum) { [unowned self] result in
            switch result {
            case .failure(let error):
                rpc?.reply(to: context, makeReply(.failure(error)))
            case .success(let (current, _)):
                let live = current.flatMap { $0.isTombstone ? nil : $0 }
                if ifAbsent, let live {
                    rpc?.reply(to: context, makeReply(.failure(.failedPrecondition("key exists at version \(live.version)"))))
                } else if let ifVersion, current?.version != ifVersion {
                    let found = current.map { "\($0.version)" } ?? "none"
                    rpc?.reply(to: context, makeReply(.failure(.failedPrecondition("current version is \(found), not \(ifVersion)"))))
                } else {
                    if let current { _ = clock.admit(current.version.timestamp, from: "a quorum read") }
                    write()
                }
            }
        }
        return .parked
    }

    private func get(_ context: RequestContext, _ request: WireGetRequest) -> HandlerOutcome<WireGetReply> {
        let key = [UInt8](request.key)
        if let problem = validate(key: key, value: nil) { return .failure(problem) }
        let plan: QuorumGroups
        do { plan = try self.plan(key: key, quorum: request.quorum, write: false) } catch { return .failure(error) }
        read(key: key, quorum: plan) { [unowned self] result in
            rpc?.reply(to: context, result.map { record, replies in
                WireGetReply.with {
                    $0.replies = UInt32(replies)
                    if let record, let value = record.value {
                        $0.found = true
                        $0.value = Data(value)
                        $0.version = record.version.wire
                    }
                }
            })
        }
        return .parked
    }

    // MARK: Replication

    /// Sends the write to its replicas; the local one joins this turn's group
    /// commit. A fenced record refused as stale by a replica fails the put with
    /// FAILED_PRECONDITION (no hint: the replica is fine, the writer is not).
    private func replicate(_ record: VersionedRecord, pending: PendingWrite) {
        let view = ringView()
        for replica in pending.replicas {
            if replica == address {
                store.enqueue([record]) { result in
                    switch result {
                    case .success(let applied):
                        if case .refused(let highest)? = applied.first {
                            pending.refused(by: replica, Self.staleFence(record, highest: highest))
                        } else {
                            pending.acknowledged(by: replica)
                        }
                    case .failure(let error): pending.failed(replica, "local commit failed: \(error)")
                    }
                }
            } else if view?.isDown(replica) == true {
                pending.failed(replica, "down")
                handOff(record, for: replica, replicas: pending.replicas)
            } else {
                enqueueReplicaWrite(record, to: replica) { [unowned self] result in
                    switch result {
                    case .success(let answer):
                        if answer.refusedBelow > 0 {
                            pending.refused(by: replica, Self.staleFence(record, highest: answer.refusedBelow))
                        } else if answer.notReplica {
                            // Not a replica under its newer plan: no ack, and no hint for it either.
                            pending.failed(replica, "not a replica under plan \(answer.planVersion)")
                        } else {
                            pending.acknowledged(by: replica)
                        }
                    case .failure(let error):
                        pending.failed(replica, error.description)
                        handOff(record, for: replica, replicas: pending.replicas)
                    }
                }
            }
        }
    }

    /// FAILED_PRECONDITION for a fenced record a replica refused.
    private static func staleFence(_ record: VersionedRecord, highest: UInt64) -> RPCError {
        let fence = record.fence.map { "fencing token \($0.token) for lock '\($0.name)'" } ?? "the fencing token"
        return .failedPrecondition("\(fence) is stale: this key has seen token \(highest)")
    }

    /// Hinted handoff: the write `target` missed goes to a stand-in, the next
    /// live member clockwise past the key's replicas, which keeps it as a hint;
    /// when there is none (every member is a replica) or it fails, this node
    /// keeps the hint itself. Hints do not count toward W: quorums stay strict.
    private func handOff(_ record: VersionedRecord, for target: String, replicas: [String]) {
        // A member that was removed gets no hints (its arcs are being rebuilt elsewhere).
        guard ringView()?.isKnownMember(target) ?? true else { return }
        guard let standIn = ringView()?.standIn(forKey: record.key, replicas: replicas), standIn != address else {
            store.enqueueHint(record, for: target)
            return
        }
        send([record], to: standIn, hintFor: target) { [unowned self] result in
            if case .failure = result { store.enqueueHint(record, for: target) }
        }
    }

    /// Reads the key from `replicas`, answering after `needed`; repairs stale replicas afterwards.
    private func read(key: [UInt8], quorum: QuorumGroups,
                      reply: @escaping (Result<(record: VersionedRecord?, replies: Int), RPCError>) -> Void) {
        let view = ringView()
        let replicas = quorum.replicas
        let pending = PendingRead(quorum: quorum, reply: reply) { [unowned self] newest, stale in
            logger.debug("node.read_repair", metadata: ["repair.replicas": "\(stale)"])
            for replica in stale {
                if replica == address {
                    store.enqueue([newest]) { _ in }
                } else {
                    enqueueReplicaWrite(newest, to: replica) { _ in }
                }
            }
        }
        for replica in replicas {
            if replica == address {
                do {
                    pending.answered(by: replica, try store.engine.get(key: key))
                } catch {
                    pending.failed(replica, "local read failed: \(error)")
                }
            } else if view?.isDown(replica) == true {
                pending.failed(replica, "down")
            } else {
                enqueueReplicaRead(key, from: replica) { result in
                    switch result {
                    case .success(let answer):
                        if answer.found, let record = try? VersionedRecord(wire: answer.record) {
                            pending.answered(by: replica, record)
                        } else if answer.found {
                            pending.failed(replica, "undecodable record")
                        } else {
                            pending.answered(by: replica, nil)
                        }
                    case .failure(let error):
                        pending.failed(replica, error.description)
                    }
                }
            }
        }
    }

    /// What a replica answered for one record of a batched ReplicaWrite.
    struct ReplicaAnswer {
        /// For a fenced record refused as stale: the highest token the replica saw (else 0).
        var refusedBelow: UInt64 = 0
        /// The replica, on a newer plan, keeps no copy of the key and did not store it.
        var notReplica = false
        var planVersion: UInt64 = 0
    }

    /// Replica writes bound for each peer during this reactor turn; sent at
    /// its end (``flushReplicaWrites()``), one ReplicaWrite per peer, which the
    /// peer applies in one group commit.
    private var replicaOutbox: [String: [(record: VersionedRecord, done: (Result<ReplicaAnswer, RPCError>) -> Void)]] = [:]
    /// Records per batched ReplicaWrite, at most.
    static let replicaBatchRecords = 1_024

    /// Queues `record` for `replica`; `done` gets the replica's answer for it, or
    /// the error of the whole call, on the reactor thread.
    func enqueueReplicaWrite(_ record: VersionedRecord, to replica: String,
                             done: @escaping (Result<ReplicaAnswer, RPCError>) -> Void) {
        replicaOutbox[replica, default: []].append((record, done))
    }

    /// Replica reads bound for each peer during this reactor turn; sent at its
    /// end, one ReplicaRead per peer (a batch when there are several keys).
    private var readOutbox: [String: [(key: [UInt8], done: (Result<WireReplicaReadAnswer, RPCError>) -> Void)]] = [:]

    /// Queues a read of `key` from `replica`; `done` gets its answer, or the
    /// error of the whole call, on the reactor thread.
    func enqueueReplicaRead(_ key: [UInt8], from replica: String,
                            done: @escaping (Result<WireReplicaReadAnswer, RPCError>) -> Void) {
        readOutbox[replica, default: []].append((key, done))
    }

    /// Keys per batched ReplicaRead, at most: the reply carries their values,
    /// so this bounds it (128 values of up to maxValueBytes each).
    static let replicaReadBatchKeys = 128

    /// Sends each peer's queued reads: a lone key as a plain ReplicaRead, several
    /// as one batch (at most `replicaReadBatchKeys` keys each).
    private func flushReplicaReads() {
        guard !readOutbox.isEmpty else { return }
        let outbox = readOutbox
        readOutbox.removeAll(keepingCapacity: true)
        let timeout = options.replicaTimeout
        for (replica, items) in outbox {
            guard let client = peers.client(for: replica) else {
                for item in items { item.done(.failure(.unavailable("no client for \(replica)"))) }
                continue
            }
            for start in stride(from: 0, to: items.count, by: Self.replicaReadBatchKeys) {
                let batch = Array(items[start..<min(start + Self.replicaReadBatchKeys, items.count)])
                let request = WireReplicaReadRequest.with { request in
                    if batch.count == 1 { request.key = Data(batch[0].key) } else { request.keys = batch.map { Data($0.key) } }
                }
                client.call(StorageMethods.replicaRead, request, timeout: timeout) { result in
                    switch result {
                    case .success(let reply) where batch.count == 1:
                        batch[0].done(.success(WireReplicaReadAnswer.with { $0.found = reply.found; $0.record = reply.record }))
                    case .success(let reply) where reply.answers.count == batch.count:
                        for (item, answer) in zip(batch, reply.answers) { item.done(.success(answer)) }
                    case .success(let reply):
                        let error = RPCError.internalError("\(reply.answers.count) answers to a batch of \(batch.count) keys")
                        for item in batch { item.done(.failure(error)) }
                    case .failure(let error):
                        for item in batch { item.done(.failure(error)) }
                    }
                }
            }
        }
    }

    /// Sends this turn's queued replica reads and writes, one message per peer
    /// for each (several when a batch would pass the peer's message size limit
    /// or the record cap). Runs at the end of every reactor turn.
    func flushReplicaTraffic() {
        flushReplicaReads()
        flushReplicaWrites()
    }

    private func flushReplicaWrites() {
        guard !replicaOutbox.isEmpty else { return }
        let outbox = replicaOutbox
        replicaOutbox.removeAll(keepingCapacity: true)
        // The peer accepts messages up to maxValueBytes + maxKeyBytes + 64 KiB:
        // a batch holds at most maxValueBytes of keys, values and per-record overhead.
        let budget = max(options.maxValueBytes, 64 << 10)
        for (replica, items) in outbox {
            var start = 0
            while start < items.count {
                var end = start
                var bytes = 0
                while end < items.count && end - start < Self.replicaBatchRecords {
                    let record = items[end].record
                    let cost = record.key.count + (record.value?.count ?? 0) + (record.fence?.name.utf8.count ?? 0) + 64
                    if end > start && bytes + cost > budget { break }
                    bytes += cost
                    end += 1
                }
                let batch = Array(items[start..<end])
                start = end
                send(batch.map(\.record), to: replica) { result in
                    switch result {
                    case .success(let reply):
                        for (index, item) in batch.enumerated() {
                            item.done(.success(ReplicaAnswer(
                                refusedBelow: index < reply.refusedBelow.count ? reply.refusedBelow[index] : 0,
                                notReplica: index < reply.notReplica.count ? reply.notReplica[index] : false,
                                planVersion: reply.planVersion)))
                        }
                    case .failure(let error):
                        for item in batch { item.done(.failure(error)) }
                    }
                }
            }
        }
    }

    /// Sends records to a replica with ReplicaWrite.
    func send(_ records: [VersionedRecord], to replica: String, hintFor target: String = "",
              then: @escaping (Result<WireReplicaWriteReply, RPCError>) -> Void) {
        guard let client = peers.client(for: replica) else {
            then(.failure(.unavailable("no client for \(replica)")))
            return
        }
        let request = WireReplicaWriteRequest.with {
            $0.records = records.map(\.wire)
            $0.hintFor = target
            $0.planVersion = ringView()?.planVersion ?? 0
        }
        let timeout = options.replicaTimeout
        client.call(StorageMethods.replicaWrite, request, timeout: timeout) { [weak self] result in
            // A replica on a newer plan: fetch the ring rather than wait for its event.
            if case .success(let reply) = result, let self, reply.planVersion > (ringView()?.planVersion ?? 0) { onNewerPlan() }
            then(result)
        }
    }

    // MARK: Replica requests

    private func replicaWrite(_ context: RequestContext, _ request: WireReplicaWriteRequest) -> HandlerOutcome<WireReplicaWriteReply> {
        var records: [VersionedRecord] = []
        records.reserveCapacity(request.records.count)
        for wire in request.records {
            if let problem = validate(key: [UInt8](wire.key), value: wire.tombstone ? nil : [UInt8](wire.value)) {
                return .failure(problem)
            }
            guard let record = try? VersionedRecord(wire: wire) else { return .failure(.invalidArgument("record with an empty key")) }
            records.append(record)
        }
        if let ahead = clock.firstRefused(records, from: "ReplicaWrite from \(context.caller)") {
            return .failure(.invalidArgument("a record's version is too far ahead: \(clock.refusal(ahead.version.timestamp))"))
        }
        if !request.hintFor.isEmpty {
            // We are a stand-in: keep the records as hints for their replica.
            guard request.hintFor != address else { return .failure(.invalidArgument("a node cannot hold hints for itself")) }
            store.enqueueHints(records, for: request.hintFor) { [unowned self] result in
                switch result {
                case .success: rpc?.reply(to: context, .success(WireReplicaWriteReply.with { $0.applied = records.map { _ in true } }))
                case .failure(let error): rpc?.fail(context, .internalError("hint commit failed: \(error)"))
                }
            }
            return .parked
        }
        // A sender on an older plan may still route to this node for arcs it
        // no longer keeps (and may have swept already): those records are not
        // stored, or they would stay here for good; the sender hears it.
        let view = ringView()
        let myPlan = view?.planVersion ?? 0
        var notReplica = [Bool](repeating: false, count: records.count)
        if let view, request.planVersion > 0, request.planVersion < myPlan {
            for (index, record) in records.enumerated() where !view.keeps(key: record.key, address: address) {
                notReplica[index] = true
            }
        }
        let kept = zip(records, notReplica).filter { !$0.1 }.map(\.0)
        if kept.count < records.count {
            logger.debug("node.replica_write.not_replica", metadata: [
                "records.refused": "\(records.count - kept.count)", "plan.sender": "\(request.planVersion)", "plan.version": "\(myPlan)",
            ])
        }
        store.enqueue(kept) { [unowned self] result in
            switch result {
            case .success(let results):
                var applied = results.makeIterator()
                let merged: [ApplyResult?] = notReplica.map { $0 ? nil : applied.next() }
                rpc?.reply(to: context, .success(WireReplicaWriteReply.with {
                    $0.applied = merged.map { $0?.wasApplied ?? false }
                    $0.refusedBelow = merged.map { result in
                        if case .refused(let highest)? = result { highest } else { 0 }
                    }
                    $0.notReplica = notReplica
                    $0.planVersion = myPlan
                }))
            case .failure(let error):
                rpc?.fail(context, .internalError("commit failed: \(error)"))
            }
        }
        return .parked
    }

    private func replicaRead(_ request: WireReplicaReadRequest) -> HandlerOutcome<WireReplicaReadReply> {
        if !request.keys.isEmpty {
            // A coordinator's batch: every key checked, then read in one database access.
            let keys = request.keys.map { [UInt8]($0) }
            guard keys.count <= Self.replicaReadBatchKeys else {
                return .failure(.invalidArgument("\(keys.count) keys in one ReplicaRead; the limit is \(Self.replicaReadBatchKeys)"))
            }
            for key in keys {
                if let problem = validate(key: key, value: nil) { return .failure(problem) }
            }
            do {
                let records = try store.engine.get(keys: keys)
                return .reply(WireReplicaReadReply.with {
                    $0.answers = records.map { record in
                        WireReplicaReadAnswer.with {
                            if let record {
                                $0.found = true
                                $0.record = record.wire
                            }
                        }
                    }
                })
            } catch {
                return .failure(.internalError("read failed: \(error)"))
            }
        }
        let key = [UInt8](request.key)
        if let problem = validate(key: key, value: nil) { return .failure(problem) }
        do {
            let record = try store.engine.get(key: key)
            return .reply(WireReplicaReadReply.with {
                if let record {
                    $0.found = true
                    $0.record = record.wire
                }
            })
        } catch {
            return .failure(.internalError("read failed: \(error)"))
        }
    }

    // MARK: Checks

    private func validate(key: [UInt8], value: [UInt8]?) -> RPCError? {
        if key.isEmpty { return .invalidArgument("the key is empty") }
        if key.count > options.maxKeyBytes {
            return .invalidArgument("the key is \(key.count) bytes; the limit is \(options.maxKeyBytes)")
        }
        if let value, value.count > options.maxValueBytes {
            return .invalidArgument("the value is \(value.count) bytes; the limit is \(options.maxValueBytes)")
        }
        return nil
    }

    /// The replicas, grouped (new and old while the key's arc moves), and the
    /// acknowledgements (W) or answers (R) each group must give.
    private func plan(key: [UInt8], quorum: WireQuorum, write: Bool) throws(RPCError) -> QuorumGroups {
        guard let view = ringView(), view.ring != nil else {
            throw .unavailable("this node has no ring yet (is placement reachable, and has any node joined?)")
        }
        let n = quorum.n == 0 ? view.replicas : Int(quorum.n)
        guard (1...16).contains(n) else { throw .invalidArgument("N=\(n) must be 1...16") }
        let asked = Int(write ? quorum.w : quorum.r)
        let needed = asked == 0 ? min(write ? options.defaultW : options.defaultR, n) : asked
        guard (1...n).contains(needed) else {
            throw .invalidArgument("\(write ? "W" : "R")=\(needed) must be between 1 and N=\(n)")
        }
        let placement = view.placement(forKey: key, replicas: n)
        guard let list = placement.groups.first, list.count >= needed else {
            throw .unavailable("the ring has \(placement.groups.first?.count ?? 0) members; \(write ? "W" : "R")=\(needed) cannot be met")
        }
        return QuorumGroups(replicas: placement.replicas, groups: placement.groups, needed: needed)
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
