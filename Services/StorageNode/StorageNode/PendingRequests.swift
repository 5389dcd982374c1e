import RPC
import StorageEngine

/// The quorum a coordinated request waits for: `needed` answers from each
/// group of replicas (one group normally; the new and the old replicas while
/// the key's arc is moving), capped at a group's size.
struct QuorumGroups {
    let replicas: [String]
    let groups: [[String]]
    let needed: Int

    /// Whether `answered` meets the quorum in every group.
    func met(by answered: Set<String>) -> Bool {
        groups.allSatisfy { group in group.count(where: answered.contains) >= min(needed, group.count) }
    }

    /// Whether the quorum can no longer be met once `failed` failed.
    func impossible(after failed: Set<String>) -> Bool {
        groups.contains { group in group.count(where: { !failed.contains($0) }) < min(needed, group.count) }
    }
}

/// A coordinated write waiting for W acknowledgements from each replica group.
final class PendingWrite {
    let record: VersionedRecord
    let quorum: QuorumGroups
    var replicas: [String] { quorum.replicas }
    private var acked: Set<String> = []
    private var failed: Set<String> = []
    private(set) var failures: [String: String] = [:]
    private var answered = false
    private let reply: (Result<Int, RPCError>) -> Void

    init(record: VersionedRecord, quorum: QuorumGroups, reply: @escaping (Result<Int, RPCError>) -> Void) {
        self.record = record
        self.quorum = quorum
        self.reply = reply
    }

    var acks: Int { acked.count }

    func acknowledged(by replica: String) {
        acked.insert(replica)
        if !answered && quorum.met(by: acked) {
            answered = true
            reply(.success(acked.count))
        }
    }

    /// A replica refused the write for a reason no other replica can change
    /// (a stale fencing token): the write fails with that error at once.
    func refused(by replica: String, _ error: RPCError) {
        failures[replica] = error.message
        failed.insert(replica)
        guard !answered else { return }
        answered = true
        reply(.failure(error))
    }

    func failed(_ replica: String, _ reason: String) {
        failures[replica] = reason
        failed.insert(replica)
        if !answered && quorum.impossible(after: failed) {
            answered = true
            let detail = failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            let groups = quorum.groups.count > 1 ? " in each of the old and new replica sets (the key's arc is moving)" : ""
            reply(.failure(.unavailable("only \(acked.count) of \(replicas.count) replicas acknowledged, \(quorum.needed) needed\(groups) (\(detail))")))
        }
    }
}

/// A coordinated read waiting for R answers from each replica group; once
/// every replica answered (or failed) it repairs the ones that were behind.
final class PendingRead {
    let quorum: QuorumGroups
    var replicas: [String] { quorum.replicas }
    private(set) var answers: [String: VersionedRecord?] = [:]
    private(set) var failures: [String: String] = [:]
    private var answered = false
    private let reply: (Result<(record: VersionedRecord?, replies: Int), RPCError>) -> Void
    private let repair: (_ newest: VersionedRecord, _ stale: [String]) -> Void

    init(quorum: QuorumGroups,
         reply: @escaping (Result<(record: VersionedRecord?, replies: Int), RPCError>) -> Void,
         repair: @escaping (VersionedRecord, [String]) -> Void) {
        self.quorum = quorum
        self.reply = reply
        self.repair = repair
    }

    var newest: VersionedRecord? {
        answers.values.compactMap { $0 }.reduce(nil) { best, record in best.map { $0.merged(with: record) } ?? record }
    }

    func answered(by replica: String, _ record: VersionedRecord?) {
        answers[replica] = record
        if !answered && quorum.met(by: Set(answers.keys)) {
            answered = true
            reply(.success((newest, answers.count)))
        }
        finishIfComplete()
    }

    func failed(_ replica: String, _ reason: String) {
        failures[replica] = reason
        if !answered && quorum.impossible(after: Set(failures.keys)) {
            answered = true
            let detail = failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            let groups = quorum.groups.count > 1 ? " in each of the old and new replica sets (the key's arc is moving)" : ""
            reply(.failure(.unavailable("only \(answers.count) of \(replicas.count) replicas answered, \(quorum.needed) needed\(groups) (\(detail))")))
        }
        finishIfComplete()
    }

    /// Read repair: every replica that answered with an older version (or
    /// nothing) gets the newest record.
    private func finishIfComplete() {
        guard answers.count + failures.count == replicas.count, let newest else { return }
        let stale = answers.filter { _, record in record.map { $0.isSuperseded(by: newest) } ?? true }.map(\.key)
        if !stale.isEmpty { repair(newest, stale.sorted()) }
    }
}
