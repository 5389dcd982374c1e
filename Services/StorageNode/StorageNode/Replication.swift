import RPC
import RingProtocol
import StorageEngine

/// The replication core of a coordinator, with no sockets, threads or clocks:
/// it takes client requests, replicas' answers, the ring view and timestamps,
/// and returns ``Directive``s (ask for a timestamp, write or read a replica,
/// hand a missed write to a stand-in, repair a replica, reply). `Coordinator`
/// is its shell: it carries the directives out over the network and the local
/// store and feeds what comes back in, so every decision here is unit-tested
/// without either (see `ReplicationTests`).
///
/// - Quorums are strict: only the key's replicas count toward W and R, so
///   R + W > N means a read sees the latest acknowledged write. While the key's
///   arc moves, the new and the old replica sets must each reach the quorum.
/// - A replica that fails a write (or that the view says is down) gets a hint
///   through a stand-in; hints never count toward W.
/// - A fenced write refused by any replica as stale fails at once.
/// - Once every replica of a read answered, the ones behind are repaired.
/// - A conditional put (if-version, if-absent) is a quorum read, then a write.
///
/// `Token` is the shell's handle for a client request, handed back in its reply.
/// Its inputs and outputs are in `Replication+Messages`, the operations it keeps
/// in `Replication+PendingOperations`, the quorum rule in ``QuorumGroups``.
struct Replication<Token> {
    typealias OperationID = UInt64

    let settings: Settings
    /// The ring and member states requests are routed by; `nil` until the node has a ring.
    var view: RingView?

    private var nextID: OperationID = 1
    /// Writes waiting for a timestamp.
    private var unstamped: [OperationID: Intent] = [:]
    private var writes: [OperationID: PendingWrite] = [:]
    private var reads: [OperationID: PendingRead] = [:]

    init(settings: Settings, view: RingView? = nil) {
        self.settings = settings
        self.view = view
    }

    /// Operations still waiting for a timestamp or for a replica's answer (each one ends).
    var operationsInFlight: Int { unstamped.count + writes.count + reads.count }

    // MARK: Client requests

    /// A put or delete: validated, routed, then stamped and sent to the key's replicas
    /// (after a quorum read, for a conditional one).
    mutating func write(_ request: Write, token: Token) -> [Directive] {
        if let problem = settings.problem(key: request.key, value: request.value) { return [.reply(token, .failed(problem))] }
        var fence: LockFence?
        if let wire = request.fence {
            guard !wire.name.isEmpty, wire.name.utf8.count <= 256, (1...UInt64(Int64.max)).contains(wire.token) else {
                return [.reply(token, .failed(.invalidArgument("a fence needs a lock name of 1...256 bytes and a token of 1...\(Int64.max)")))]
            }
            fence = LockFence(name: wire.name, token: wire.token)
        }
        let quorum: QuorumGroups
        do { quorum = try plan(key: request.key, quorum: request.quorum, write: true) } catch { return [.reply(token, .failed(error))] }
        let intent = Intent(token: token, key: request.key, value: request.value, fence: fence, quorum: quorum,
                            plan: view?.planVersion ?? 0)
        guard request.ifVersion != nil || request.ifAbsent else { return stamp(intent, after: nil) }
        // Conditional put: a quorum read decides. Best effort, not linearizable:
        // two writers can both pass; fenced writes give mutual exclusion.
        let defaultR = view?.info.defaultReadQuorum(replicas: quorum.groups.first?.count ?? 1) ?? 1
        let readQuorum = QuorumGroups(replicas: quorum.replicas, groups: quorum.groups, needed: max(quorum.needed, defaultR))
        let condition = Condition(intent: intent, ifVersion: request.ifVersion, ifAbsent: request.ifAbsent)
        return startRead(key: request.key, quorum: readQuorum, purpose: .condition(condition))
    }

    /// A get: the newest record of R replicas (of each replica set while the arc moves).
    mutating func get(key: [UInt8], quorum wire: WireQuorum, token: Token) -> [Directive] {
        if let problem = settings.problem(key: key, value: nil) { return [.reply(token, .failed(problem))] }
        let quorum: QuorumGroups
        do { quorum = try plan(key: key, quorum: wire, write: false) } catch { return [.reply(token, .failed(error))] }
        return startRead(key: key, quorum: quorum, purpose: .get(token))
    }

    // MARK: Answers

    /// The timestamp asked for by a ``Directive/stamp(_:after:)``: the write goes out.
    mutating func stamped(_ id: OperationID, timestamp: UInt64) -> [Directive] {
        guard let intent = unstamped.removeValue(forKey: id) else { return [] }
        let version = Version(timestamp: timestamp, writer: settings.writer)
        guard let record = try? VersionedRecord(key: intent.key, value: intent.value, version: version, fence: intent.fence) else {
            // Cannot happen: the key was checked to be non-empty.
            return [.reply(intent.token, .failed(.internalError("a validated key was refused")))]
        }
        var write = PendingWrite(intent: intent, record: record)
        var directives: [Directive] = []
        for replica in intent.quorum.replicas {
            if replica != settings.address, view?.isDown(replica) == true {
                write.failed(replica, "down", into: &directives)
                handOff(record, for: replica, replicas: intent.quorum.replicas, into: &directives)
            } else {
                directives.append(.write(id, record, to: replica, plan: intent.plan))
            }
        }
        if !write.isComplete { writes[id] = write }
        return directives
    }

    /// A replica's answer to a ``Directive/write(_:_:to:)``.
    mutating func written(_ id: OperationID, by replica: String, _ answer: WriteAnswer) -> [Directive] {
        // Taken out while it changes, so its sets are not copied (copy-on-write).
        guard var write = writes.removeValue(forKey: id) else { return [] }
        var directives: [Directive] = []
        switch answer {
        case .acknowledged:
            write.acknowledged(by: replica, into: &directives)
        case .refused(let highest):
            write.refused(by: replica, Self.staleFence(write.record, highest: highest), into: &directives)
        case .notReplica(let plan):
            // Not a replica under its newer plan: no ack, and no hint for it either.
            write.failed(replica, "not a replica under plan \(plan)", into: &directives)
        case .failed(let reason):
            write.failed(replica, reason, into: &directives)
            if replica == settings.address {
                // The local store failed: there is nobody to hand the record to that is better placed.
                break
            }
            handOff(write.record, for: replica, replicas: write.intent.quorum.replicas, into: &directives)
        }
        if !write.isComplete { writes[id] = write }
        return directives
    }

    /// A replica's answer to a ``Directive/read(_:key:from:)``: its record (`nil` when it has none).
    mutating func answered(_ id: OperationID, by replica: String, _ record: VersionedRecord?) -> [Directive] {
        guard var read = reads.removeValue(forKey: id) else { return [] }
        var directives: [Directive] = []
        let quorumJustMet = read.answered(by: replica, record)
        if quorumJustMet { directives += readSucceeded(read) }
        directives += finish(read, id: id)
        return directives
    }

    /// A replica could not answer a ``Directive/read(_:key:from:)``.
    mutating func readFailed(_ id: OperationID, by replica: String, _ reason: String) -> [Directive] {
        guard var read = reads.removeValue(forKey: id) else { return [] }
        var directives: [Directive] = []
        if let error = read.failed(replica, reason) { directives += readFailed(read, error) }
        directives += finish(read, id: id)
        return directives
    }

    /// The stand-in of a ``Directive/hint(_:for:via:)`` could not take the hint: this node keeps it.
    func standInFailed(_ record: VersionedRecord, for target: String) -> [Directive] {
        [.hint(record, for: target, via: settings.address)]
    }

    // MARK: Reads

    private mutating func startRead(key: [UInt8], quorum: QuorumGroups, purpose: Purpose) -> [Directive] {
        let id = newID()
        var read = PendingRead(key: key, quorum: quorum, purpose: purpose, plan: view?.planVersion ?? 0)
        var directives: [Directive] = []
        for replica in quorum.replicas {
            if replica != settings.address, view?.isDown(replica) == true {
                if let error = read.failed(replica, "down") { directives += readFailed(read, error) }
            } else {
                directives.append(.read(id, key: key, from: replica))
            }
        }
        directives += finish(read, id: id)
        return directives
    }

    /// Keeps the read while replicas still owe an answer; once all answered, repairs the stale ones.
    private mutating func finish(_ read: PendingRead, id: OperationID) -> [Directive] {
        guard read.isComplete else {
            reads[id] = read
            return []
        }
        guard let newest = read.newest else { return [] }
        return read.stale(comparedWith: newest).map { .repair(newest, to: $0, plan: read.plan) }
    }

    /// The read reached its quorum: a get replies, a conditional put checks its condition.
    private mutating func readSucceeded(_ read: PendingRead) -> [Directive] {
        let newest = read.newest
        switch read.purpose {
        case .get(let token):
            return [.reply(token, .read(newest, replies: read.answerCount))]
        case .condition(let condition):
            let live = newest.flatMap { $0.isTombstone ? nil : $0 }
            if condition.ifAbsent, let live {
                return [.reply(condition.intent.token, .failed(.failedPrecondition("key exists at version \(live.version)")))]
            }
            if let ifVersion = condition.ifVersion, newest?.version != ifVersion {
                let found = newest.map { "\($0.version)" } ?? "none"
                return [.reply(condition.intent.token, .failed(.failedPrecondition("current version is \(found), not \(ifVersion)")))]
            }
            return stamp(condition.intent, after: newest?.version.timestamp)
        }
    }

    private func readFailed(_ read: PendingRead, _ error: RPCError) -> [Directive] {
        switch read.purpose {
        case .get(let token): [.reply(token, .failed(error))]
        case .condition(let condition): [.reply(condition.intent.token, .failed(error))]
        }
    }

    // MARK: Writes

    private mutating func stamp(_ intent: Intent, after: UInt64?) -> [Directive] {
        let id = newID()
        unstamped[id] = intent
        return [.stamp(id, after: after)]
    }

    /// Hinted handoff: the write `target` missed goes to a stand-in, the next live
    /// member clockwise past the key's replicas, which keeps it as a hint; when there
    /// is none (every member is a replica) this node keeps the hint itself. A member
    /// that was removed gets no hints (its arcs are being rebuilt elsewhere).
    private func handOff(_ record: VersionedRecord, for target: String, replicas: [String], into directives: inout [Directive]) {
        guard view?.isKnownMember(target) ?? true else { return }
        let standIn = view?.standIn(forKey: record.key, replicas: replicas) ?? settings.address
        directives.append(.hint(record, for: target, via: standIn))
    }

    /// FAILED_PRECONDITION for a fenced record a replica refused.
    static func staleFence(_ record: VersionedRecord, highest: UInt64) -> RPCError {
        let fence = record.fence.map { "fencing token \($0.token) for lock '\($0.name)'" } ?? "the fencing token"
        return .failedPrecondition("\(fence) is stale: this key has seen token \(highest)")
    }

    // MARK: Routing

    /// The replicas, grouped (new and old while the key's arc moves), and the
    /// acknowledgements (W) or answers (R) each group must give.
    private func plan(key: [UInt8], quorum: WireQuorum, write: Bool) throws(RPCError) -> QuorumGroups {
        guard let view, view.ring != nil else {
            throw .unavailable("this node has no ring yet (is placement reachable, and has any node joined?)")
        }
        let n = quorum.n == 0 ? view.replicas : Int(quorum.n)
        guard (1...16).contains(n) else { throw .invalidArgument("N=\(n) must be 1...16") }
        let asked = Int(write ? quorum.w : quorum.r)
        // Defaults come with the ring: placement sets them once for the cluster.
        let needed = asked == 0 ? (write ? view.info.defaultWriteQuorum(replicas: n) : view.info.defaultReadQuorum(replicas: n)) : asked
        guard (1...n).contains(needed) else {
            throw .invalidArgument("\(write ? "W" : "R")=\(needed) must be between 1 and N=\(n)")
        }
        let placement = view.placement(forKey: key, replicas: n)
        guard let list = placement.groups.first, list.count >= needed else {
            throw .unavailable("the ring has \(placement.groups.first?.count ?? 0) members; \(write ? "W" : "R")=\(needed) cannot be met")
        }
        return QuorumGroups(replicas: placement.replicas, groups: placement.groups, needed: needed)
    }

    private mutating func newID() -> OperationID {
        defer { nextID += 1 }
        return nextID
    }
}
