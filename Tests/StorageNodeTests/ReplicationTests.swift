import RPC
import Ring
import RingProtocol
import StorageEngine
@testable import StorageNode
import Testing

/// The replication core on its own: requests and replica answers in, directives
/// out, with no sockets, threads or clocks (the test plays the shell).
@Suite("Replication core")
struct ReplicationTests {
    typealias Core = Replication<Int>
    typealias Directive = Core.Directive

    static let key = Array("user:42".utf8)
    static let writer: UInt64 = 7

    // MARK: Fixture

    /// A ring of `count` members (`node-1:7000` ...) with N replicas, member states and pending arcs.
    static func view(members count: Int, replicas: Int = 3, states: [String: WireMemberState] = [:],
                     pending: [WirePendingArc] = [], plan: UInt64 = 1, w: Int = 0, r: Int = 0) -> RingView {
        RingView(info: WireRingInfo.with { info in
            info.ringEpoch = 1
            info.density = 160
            info.replicas = UInt32(replicas)
            info.writeQuorum = UInt32(w)
            info.readQuorum = UInt32(r)
            info.members = (1...count).map { index in
                let address = "node-\(index):7000"
                return WireMember.with { $0.address = address; $0.weight = 1; $0.state = states[address] ?? .up }
            }
            info.plan = WireMigrationPlan.with { $0.version = plan; $0.pending = pending }
        })
    }

    /// The key's replicas under `view`, in preference order.
    static func replicas(_ view: RingView, n: Int = 3) -> [String] {
        view.preferenceList(forKey: key, replicas: n)
    }

    /// A core on `address` (the key's first replica unless given) routing by
    /// `view`, whose ring sets the default W and R (a majority of N unless
    /// `view` was made with others).
    static func core(_ view: RingView, address: String? = nil) -> Core {
        Core(settings: .init(address: address ?? replicas(view)[0], writer: writer, maxKeyBytes: 64, maxValueBytes: 1_000),
             view: view)
    }

    static func record(_ value: String?, timestamp: UInt64, writer: UInt64 = 1) throws -> VersionedRecord {
        try VersionedRecord(key: key, value: value.map { Array($0.utf8) }, version: Version(timestamp: timestamp, writer: writer))
    }

    /// Starts a write and answers its stamp with `timestamp`: the directives that follow.
    static func write(_ core: inout Core, _ request: Core.Write, token: Int = 1, timestamp: UInt64 = 1_000) -> [Directive] {
        let first = core.write(request, token: token)
        guard case .stamp(let id, nil)? = first.first, first.count == 1 else { return first }
        return core.stamped(id, timestamp: timestamp)
    }

    /// The replica writes among `directives`: (operation, replica).
    static func writes(_ directives: [Directive]) -> [(id: Core.OperationID, replica: String)] {
        directives.compactMap { if case .write(let id, _, let replica, _) = $0 { (id, replica) } else { nil } }
    }

    static func reads(_ directives: [Directive]) -> [(id: Core.OperationID, replica: String)] {
        directives.compactMap { if case .read(let id, _, let replica) = $0 { (id, replica) } else { nil } }
    }

    static func replies(_ directives: [Directive]) -> [Core.Outcome] {
        directives.compactMap { if case .reply(_, let outcome) = $0 { outcome } else { nil } }
    }

    static func hints(_ directives: [Directive]) -> [(target: String, via: String)] {
        directives.compactMap { if case .hint(_, let target, let via) = $0 { (target, via) } else { nil } }
    }

    static func failureCode(_ outcomes: [Core.Outcome]) -> WireStatusCode? {
        if case .failed(let error)? = outcomes.first { error.code } else { nil }
    }

    // MARK: Writes

    @Test("a put goes to its N replicas stamped with the clock's time, replies at W acks, and ends once all answered")
    func writeQuorum() throws {
        let view = Self.view(members: 4)
        var core = Self.core(view)
        let directives = Self.write(&core, .init(key: Self.key, value: Array("v".utf8)), token: 9, timestamp: 5_000)
        let sent = Self.writes(directives)
        #expect(sent.map(\.replica) == Self.replicas(view))
        guard case .write(_, let record, _, _)? = directives.first else { Issue.record("no write"); return }
        #expect(record.version == Version(timestamp: 5_000, writer: Self.writer))
        #expect(core.written(sent[0].id, by: sent[0].replica, .acknowledged).isEmpty)
        #expect(core.written(sent[1].id, by: sent[1].replica, .acknowledged)
            == [.reply(9, .written(Version(timestamp: 5_000, writer: Self.writer), acks: 2))])
        #expect(core.operationsInFlight == 1)
        #expect(core.written(sent[2].id, by: sent[2].replica, .acknowledged).isEmpty)
        #expect(core.operationsInFlight == 0)
    }

    @Test("replicas that fail get hints through the stand-in; when the quorum cannot be met the put fails naming them")
    func failuresHintAndFailTheQuorum() throws {
        let view = Self.view(members: 4)
        let replicas = Self.replicas(view)
        let standIn = try #require(view.standIn(forKey: Self.key, replicas: replicas))
        #expect(!replicas.contains(standIn))
        var core = Self.core(view)
        let sent = Self.writes(Self.write(&core, .init(key: Self.key, value: [1])))
        let first = core.written(sent[1].id, by: replicas[1], .failed("deadline exceeded"))
        #expect(Self.replies(first).isEmpty)
        #expect(Self.hints(first).map(\.target) == [replicas[1]])
        #expect(Self.hints(first).map(\.via) == [standIn])
        let second = core.written(sent[2].id, by: replicas[2], .failed("connection lost"))
        #expect(Self.hints(second).map(\.target) == [replicas[2]])
        let outcome = Self.replies(second)
        #expect(Self.failureCode(outcome) == .unavailable)
        if case .failed(let error)? = outcome.first {
            #expect(error.message.contains("only 0 of 3 replicas acknowledged, 2 needed"))
            #expect(error.message.contains("\(replicas[2]): connection lost"))
        }
        // The local replica's late ack changes nothing.
        #expect(core.written(sent[0].id, by: replicas[0], .acknowledged).isEmpty)
        #expect(core.operationsInFlight == 0)
    }

    @Test("a replica the view says is down is not sent the write: it fails at once and gets its hint")
    func downReplicaFailsAtOnce() throws {
        let plain = Self.view(members: 4)
        let down = Self.replicas(plain)[2]
        let view = Self.view(members: 4, states: [down: .down])
        var core = Self.core(view)
        let directives = Self.write(&core, .init(key: Self.key, value: [1]))
        #expect(!Self.writes(directives).map(\.replica).contains(down))
        #expect(Self.hints(directives).map(\.target) == [down])
        let sent = Self.writes(directives)
        #expect(Self.replies(core.written(sent[0].id, by: sent[0].replica, .acknowledged)).isEmpty)
        #expect(Self.replies(core.written(sent[1].id, by: sent[1].replica, .acknowledged)).count == 1)
        #expect(core.operationsInFlight == 0)
    }

    @Test("with every member a replica there is no stand-in: the coordinator keeps the hint itself")
    func hintKeptLocallyWithoutStandIn() throws {
        let view = Self.view(members: 3)
        var core = Self.core(view)
        let sent = Self.writes(Self.write(&core, .init(key: Self.key, value: [1])))
        let directives = core.written(sent[2].id, by: sent[2].replica, .failed("gone"))
        #expect(Self.hints(directives).map(\.via) == [core.settings.address])
        // A stand-in that cannot take a hint hands it back to this node.
        let record = try Self.record("v", timestamp: 3)
        #expect(core.standInFailed(record, for: sent[2].replica) == [.hint(record, for: sent[2].replica, via: core.settings.address)])
    }

    @Test("the local store failing counts as that replica's failure, with no hint for itself")
    func localFailureHasNoHint() throws {
        let view = Self.view(members: 4)
        var core = Self.core(view)
        let sent = Self.writes(Self.write(&core, .init(key: Self.key, value: [1])))
        let directives = core.written(sent[0].id, by: core.settings.address, .failed("disk full"))
        #expect(directives.isEmpty)
    }

    @Test("a fenced write refused as stale by one replica fails at once with FAILED_PRECONDITION, whatever the others say")
    func staleFenceFailsTheWrite() throws {
        let view = Self.view(members: 3)
        var core = Self.core(view)
        var request = Core.Write(key: Self.key, value: [1])
        request.fence = WireFence.with { $0.name = "orders"; $0.token = 4 }
        let directives = Self.write(&core, request)
        guard case .write(_, let record, _, _)? = directives.first else { Issue.record("no write"); return }
        #expect(record.fence == LockFence(name: "orders", token: 4))
        let sent = Self.writes(directives)
        #expect(core.written(sent[0].id, by: sent[0].replica, .acknowledged).isEmpty)
        let refused = Self.replies(core.written(sent[1].id, by: sent[1].replica, .refused(highestToken: 9)))
        #expect(Self.failureCode(refused) == .failedPrecondition)
        if case .failed(let error)? = refused.first { #expect(error.message.contains("fencing token 4 for lock 'orders' is stale")) }
        #expect(Self.replies(core.written(sent[2].id, by: sent[2].replica, .acknowledged)).isEmpty)
        #expect(core.operationsInFlight == 0)
    }

    @Test("a replica on a newer plan that does not keep the key counts as a failure and gets no hint")
    func notReplicaGetsNoHint() throws {
        let view = Self.view(members: 4)
        var core = Self.core(view)
        let sent = Self.writes(Self.write(&core, .init(key: Self.key, value: [1])))
        let directives = core.written(sent[1].id, by: sent[1].replica, .notReplica(plan: 2))
        #expect(directives.isEmpty)
        #expect(Self.failureCode(Self.replies(core.written(sent[2].id, by: sent[2].replica, .notReplica(plan: 2)))) == .unavailable)
    }

    @Test("while the key's arc moves, a write needs W acks from the new replicas and from the old ones")
    func dualReplicaSetsDuringMigration() throws {
        let before = Self.view(members: 4)
        let newReplicas = Self.replicas(before)
        let outsider = try #require((1...5).map { "node-\($0):7000" }.first { !newReplicas.contains($0) && $0 != "node-5:7000" })
        let oldReplicas = [outsider, "node-5:7000", newReplicas[0]]
        let position = try HashRing.position(forKey: Self.key)
        let moving = WirePendingArc.with {
            $0.arc = WireArcRange.with { $0.first = position; $0.last = position }
            $0.oldReplicas = oldReplicas
            $0.newReplicas = newReplicas
        }
        let view = Self.view(members: 4, pending: [moving])
        var core = Self.core(view)
        let sent = Self.writes(Self.write(&core, .init(key: Self.key, value: [1])))
        #expect(Set(sent.map(\.replica)) == Set(newReplicas + oldReplicas))
        #expect(sent.count == 5)
        func ack(_ replica: String) -> [Core.Outcome] {
            Self.replies(core.written(sent[0].id, by: replica, .acknowledged))
        }
        // Two new replicas (one of them also old) meet the new set's quorum only.
        #expect(ack(newReplicas[0]).isEmpty)
        #expect(ack(newReplicas[1]).isEmpty)
        // The second old replica meets the old set's quorum too.
        #expect(ack(outsider).count == 1)
        // Failing the old set makes a second write impossible, with the reason named.
        let second = Self.writes(Self.write(&core, .init(key: Self.key, value: [2]), token: 2))
        _ = core.written(second[0].id, by: outsider, .failed("x"))
        let last = core.written(second[0].id, by: "node-5:7000", .failed("y"))
        // node-5 left the ring: it gets no hint (its arcs are rebuilt elsewhere).
        #expect(Self.hints(last).isEmpty)
        let failed = Self.replies(last)
        if case .failed(let error)? = failed.first {
            #expect(error.message.contains("in each of the old and new replica sets"))
        } else {
            Issue.record("expected the write to fail once the old set could not reach W, got \(failed)")
        }
    }

    @Test("bad requests are refused before anything is sent", arguments: [
        (Core.Write(key: [], value: [1]), WireStatusCode.invalidArgument),
        (Core.Write(key: Array(repeating: 1, count: 65), value: [1]), .invalidArgument),
        (Core.Write(key: [1], value: Array(repeating: 0, count: 1_001)), .invalidArgument),
        (Core.Write(key: [1], value: [1], quorum: WireQuorum.with { $0.n = 3; $0.w = 4 }), .invalidArgument),
        (Core.Write(key: [1], value: [1], quorum: WireQuorum.with { $0.n = 17 }), .invalidArgument),
        (Core.Write(key: [1], value: [1], quorum: WireQuorum.with { $0.n = 5; $0.w = 5 }), .unavailable),
        (Core.Write(key: [1], value: [1], fence: WireFence.with { $0.name = ""; $0.token = 1 }), .invalidArgument),
        (Core.Write(key: [1], value: [1], fence: WireFence.with { $0.name = "l"; $0.token = 0 }), .invalidArgument),
    ])
    func badWritesAreRefused(request: Core.Write, code: WireStatusCode) {
        var core = Self.core(Self.view(members: 4))
        let directives = core.write(request, token: 3)
        #expect(directives.count == 1)
        #expect(Self.failureCode(Self.replies(directives)) == code)
        #expect(core.operationsInFlight == 0)
    }

    @Test("without a ring every request is UNAVAILABLE")
    func noRing() {
        var core = Core(settings: .init(address: "a:1", writer: 1, maxKeyBytes: 64, maxValueBytes: 64))
        #expect(Self.failureCode(Self.replies(core.get(key: [1], quorum: WireQuorum(), token: 1))) == .unavailable)
        #expect(Self.failureCode(Self.replies(core.write(.init(key: [1], value: [1]), token: 1))) == .unavailable)
    }

    // MARK: Reads

    @Test("a get answers with the newest of R answers, then repairs every replica that was behind once all answered")
    func readQuorumAndRepair() throws {
        let view = Self.view(members: 4)
        var core = Self.core(view)
        let replicas = Self.replicas(view)
        let directives = core.get(key: Self.key, quorum: WireQuorum(), token: 5)
        let sent = Self.reads(directives)
        #expect(sent.map(\.replica) == replicas)
        let old = try Self.record("old", timestamp: 10)
        let new = try Self.record("new", timestamp: 20)
        #expect(core.answered(sent[0].id, by: replicas[0], old).isEmpty)
        #expect(core.answered(sent[0].id, by: replicas[1], new) == [.reply(5, .read(new, replies: 2))])
        // The last answer (nothing) completes the read: the two that were behind get the newest record.
        let behind = [replicas[0], replicas[2]].sorted()
        #expect(core.answered(sent[0].id, by: replicas[2], nil) == behind.map { .repair(new, to: $0, plan: 1) })
        #expect(core.operationsInFlight == 0)
    }

    @Test("replicas that agree are not repaired; a failed replica is not repaired either")
    func noRepairWhenInAgreement() throws {
        let view = Self.view(members: 4)
        var core = Self.core(view)
        let replicas = Self.replicas(view)
        let sent = Self.reads(core.get(key: Self.key, quorum: WireQuorum(), token: 1))
        let record = try Self.record("same", timestamp: 10)
        _ = core.answered(sent[0].id, by: replicas[0], record)
        #expect(core.readFailed(sent[0].id, by: replicas[1], "timeout").isEmpty)
        #expect(Self.replies(core.answered(sent[0].id, by: replicas[2], record)).count == 1)
        #expect(core.operationsInFlight == 0)
    }

    @Test("a read fails once R answers cannot come, naming the failures; a tombstone reads as not found")
    func readFailures() throws {
        let plain = Self.view(members: 4)
        let view = Self.view(members: 4, states: [Self.replicas(plain)[1]: .down])
        var core = Self.core(view)
        let replicas = Self.replicas(view)
        let directives = core.get(key: Self.key, quorum: WireQuorum(), token: 1)
        #expect(Self.reads(directives).map(\.replica) == [replicas[0], replicas[2]])
        let outcome = Self.replies(core.readFailed(Self.reads(directives)[0].id, by: replicas[2], "deadline"))
        #expect(Self.failureCode(outcome) == .unavailable)
        if case .failed(let error)? = outcome.first {
            #expect(error.message.contains("\(replicas[1]): down"))
            #expect(error.message.contains("\(replicas[2]): deadline"))
        }
        let tombstone = try Self.record(nil, timestamp: 30)
        var other = Self.core(Self.view(members: 4, r: 1))
        let sent = Self.reads(other.get(key: Self.key, quorum: WireQuorum(), token: 2))
        #expect(other.answered(sent[0].id, by: sent[0].replica, tombstone) == [.reply(2, .read(tombstone, replies: 1))])
    }

    // MARK: Conditional puts

    @Test("if-absent: a live value refuses the put; a tombstone lets it through, stamped after the tombstone")
    func ifAbsent() throws {
        let view = Self.view(members: 3)
        let replicas = Self.replicas(view)
        var core = Self.core(view)
        var request = Core.Write(key: Self.key, value: [1])
        request.ifAbsent = true
        let reads = Self.reads(core.write(request, token: 1))
        #expect(reads.count == 3)
        _ = core.answered(reads[0].id, by: replicas[0], try Self.record("there", timestamp: 40))
        let refused = Self.replies(core.answered(reads[0].id, by: replicas[1], nil))
        #expect(Self.failureCode(refused) == .failedPrecondition)

        let tombstone = try Self.record(nil, timestamp: 50)
        let again = Self.reads(core.write(request, token: 2))
        _ = core.answered(again[0].id, by: replicas[0], tombstone)
        let next = core.answered(again[0].id, by: replicas[1], tombstone)
        guard case .stamp(let id, let after)? = next.first else { Issue.record("expected a stamp, got \(next)"); return }
        #expect(after == 50)
        #expect(Self.writes(core.stamped(id, timestamp: 51)).count == 3)
    }

    @Test("if-version: the put goes through only when the quorum's newest version is the one given")
    func ifVersion() throws {
        let view = Self.view(members: 3)
        let replicas = Self.replicas(view)
        var core = Self.core(view)
        let current = try Self.record("v1", timestamp: 60)
        var request = Core.Write(key: Self.key, value: [2])
        request.ifVersion = Version(timestamp: 59, writer: 1)
        let reads = Self.reads(core.write(request, token: 1))
        _ = core.answered(reads[0].id, by: replicas[0], current)
        let refused = Self.replies(core.answered(reads[0].id, by: replicas[1], current))
        #expect(Self.failureCode(refused) == .failedPrecondition)

        request.ifVersion = current.version
        let again = Self.reads(core.write(request, token: 2))
        _ = core.answered(again[0].id, by: replicas[0], current)
        #expect(core.answered(again[0].id, by: replicas[1], current).first.map { if case .stamp = $0 { true } else { false } } == true)
    }

    // MARK: Plan versions

    @Test("writes and read repairs carry the plan version they were routed by, though the view moved on meanwhile")
    func routedPlanTravelsWithTheRecords() throws {
        var core = Self.core(Self.view(members: 4, plan: 7))
        let replicas = Self.replicas(Self.view(members: 4))
        let reads = Self.reads(core.get(key: Self.key, quorum: WireQuorum(), token: 1))
        let first = core.write(.init(key: Self.key, value: [1]), token: 2)
        // A newer plan arrives before the answers and the timestamp.
        core.view = Self.view(members: 4, plan: 8)
        guard case .stamp(let id, _)? = first.first else { Issue.record("expected a stamp"); return }
        let writes = core.stamped(id, timestamp: 99).compactMap { if case .write(_, _, _, let plan) = $0 { plan } else { nil } }
        #expect(writes == [7, 7, 7])
        let record = try Self.record("v", timestamp: 5)
        _ = core.answered(reads[0].id, by: replicas[0], record)
        _ = core.answered(reads[0].id, by: replicas[1], record)
        #expect(core.answered(reads[0].id, by: replicas[2], nil) == [.repair(record, to: replicas[2], plan: 7)])
    }
}

/// The default W and R come with the ring: placement sets them for the cluster.
@Suite struct RingQuorumDefaultTests {
    @Test("a request without W or R waits for the ring's, or a majority of N when the ring sets none")
    func defaultsFromTheRing() {
        typealias T = ReplicationTests
        // W=3 from the ring: the put goes to three replicas and needs all three.
        var strict = T.core(T.view(members: 4, w: 3, r: 1))
        let writes = T.writes(T.write(&strict, .init(key: T.key, value: [1])))
        #expect(writes.count == 3)
        #expect(strict.written(writes[0].id, by: writes[0].replica, .acknowledged).isEmpty)
        #expect(strict.written(writes[1].id, by: writes[1].replica, .acknowledged).isEmpty, "two of W=3 is not enough")
        #expect(!strict.written(writes[2].id, by: writes[2].replica, .acknowledged).isEmpty)
        // R=1 from the ring: one answer is enough.
        let reads = T.reads(strict.get(key: T.key, quorum: WireQuorum(), token: 9))
        #expect(strict.answered(reads[0].id, by: reads[0].replica, nil) == [.reply(9, .read(nil, replies: 1))])

        #expect(WireRingInfo.with { $0.replicas = 5 }.defaultWriteQuorum(replicas: 5) == 3, "a majority of N=5")
        #expect(WireRingInfo.with { $0.replicas = 3; $0.readQuorum = 3 }.defaultReadQuorum(replicas: 2) == 2, "never more than N")
        #expect(WireRingInfo().defaultReadQuorum(replicas: 3) == 2, "nothing set: N=3, a majority")
    }
}
