import RPC
import StorageEngine

/// The operations the replication core keeps while replicas owe answers: a
/// write routed and waiting for its version, a write waiting for W
/// acknowledgements, a read waiting for R answers (kept to the end for read
/// repair).
extension Replication {
    /// A write routed and checked, waiting for its version.
    struct Intent {
        let token: Token
        let key: [UInt8]
        let value: [UInt8]?
        let fence: LockFence?
        let quorum: QuorumGroups
        /// The plan version it was routed by.
        let plan: UInt64
    }

    struct Condition {
        let intent: Intent
        let ifVersion: Version?
        let ifAbsent: Bool
    }

    enum Purpose {
        case get(Token)
        case condition(Condition)
    }

    /// A write waiting for W acknowledgements from each replica group; kept until every replica answered.
    struct PendingWrite {
        let intent: Intent
        let record: VersionedRecord
        private var acked: Set<String> = []
        private var failures: [String: String] = [:]
        private var replied = false

        init(intent: Intent, record: VersionedRecord) {
            self.intent = intent
            self.record = record
        }

        var isComplete: Bool { acked.count + failures.count >= intent.quorum.replicas.count }

        mutating func acknowledged(by replica: String, into directives: inout [Directive]) {
            acked.insert(replica)
            if !replied && intent.quorum.met(by: acked) {
                replied = true
                directives.append(.reply(intent.token, .written(record.version, acks: acked.count)))
            }
        }

        /// A reason no other replica can change (a stale fencing token): the write fails at once.
        mutating func refused(by replica: String, _ error: RPCError, into directives: inout [Directive]) {
            failures[replica] = error.message
            guard !replied else { return }
            replied = true
            directives.append(.reply(intent.token, .failed(error)))
        }

        mutating func failed(_ replica: String, _ reason: String, into directives: inout [Directive]) {
            failures[replica] = reason
            guard !replied, intent.quorum.impossible(after: Set(failures.keys)) else { return }
            replied = true
            directives.append(.reply(intent.token, .failed(intent.quorum.shortfall(acked.count, "acknowledged", failures))))
        }
    }

    /// A read waiting for R answers from each replica group; kept until every replica answered, for read repair.
    struct PendingRead {
        let key: [UInt8]
        let quorum: QuorumGroups
        let purpose: Purpose
        /// The plan version it was routed by.
        let plan: UInt64
        private var answers: [String: VersionedRecord?] = [:]
        private var failures: [String: String] = [:]
        private var decided = false

        init(key: [UInt8], quorum: QuorumGroups, purpose: Purpose, plan: UInt64) {
            self.key = key
            self.quorum = quorum
            self.purpose = purpose
            self.plan = plan
        }

        var answerCount: Int { answers.count }
        var isComplete: Bool { answers.count + failures.count >= quorum.replicas.count }

        var newest: VersionedRecord? {
            answers.values.compactMap { $0 }.reduce(nil) { best, record in best.map { $0.merged(with: record) } ?? record }
        }

        /// Records the answer; `true` when it is the one that met the quorum.
        mutating func answered(by replica: String, _ record: VersionedRecord?) -> Bool {
            answers[replica] = record
            guard !decided, quorum.met(by: Set(answers.keys)) else { return false }
            decided = true
            return true
        }

        /// Records the failure; the read's error when it is the one that made the quorum impossible.
        mutating func failed(_ replica: String, _ reason: String) -> RPCError? {
            failures[replica] = reason
            guard !decided, quorum.impossible(after: Set(failures.keys)) else { return nil }
            decided = true
            return quorum.shortfall(answers.count, "answered", failures)
        }

        /// The replicas that answered with an older version than `newest`, or with nothing.
        func stale(comparedWith newest: VersionedRecord) -> [String] {
            answers.filter { _, record in record.map { $0.isSuperseded(by: newest) } ?? true }.map(\.key).sorted()
        }
    }
}
