import RPC
import StorageEngine

/// A coordinated write waiting for W acknowledgements out of its replicas.
final class PendingWrite {
    let record: VersionedRecord
    let replicas: [String]
    let needed: Int
    private(set) var acks = 0
    private(set) var failures: [String: String] = [:]
    private var answered = false
    private let reply: (Result<Int, RPCError>) -> Void

    init(record: VersionedRecord, replicas: [String], needed: Int, reply: @escaping (Result<Int, RPCError>) -> Void) {
        self.record = record
        self.replicas = replicas
        self.needed = needed
        self.reply = reply
    }

    func acknowledged(by replica: String) {
        acks += 1
        if !answered && acks >= needed {
            answered = true
            reply(.success(acks))
        }
    }

    func failed(_ replica: String, _ reason: String) {
        failures[replica] = reason
        if !answered && replicas.count - failures.count < needed {
            answered = true
            let detail = failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            reply(.failure(.unavailable("only \(acks) of \(replicas.count) replicas acknowledged, \(needed) needed (\(detail))")))
        }
    }
}

/// A coordinated read waiting for R answers; once every replica answered (or
/// failed) it repairs the ones that were behind.
final class PendingRead {
    let replicas: [String]
    let needed: Int
    private(set) var answers: [String: VersionedRecord?] = [:]
    private(set) var failures: [String: String] = [:]
    private var answered = false
    private let reply: (Result<(record: VersionedRecord?, replies: Int), RPCError>) -> Void
    private let repair: (_ newest: VersionedRecord, _ stale: [String]) -> Void

    init(replicas: [String], needed: Int,
         reply: @escaping (Result<(record: VersionedRecord?, replies: Int), RPCError>) -> Void,
         repair: @escaping (VersionedRecord, [String]) -> Void) {
        self.replicas = replicas
        self.needed = needed
        self.reply = reply
        self.repair = repair
    }

    var newest: VersionedRecord? {
        answers.values.compactMap { $0 }.reduce(nil) { best, record in best.map { $0.merged(with: record) } ?? record }
    }

    func answered(by replica: String, _ record: VersionedRecord?) {
        answers[replica] = record
        if !answered && answers.count >= needed {
            answered = true
            reply(.success((newest, answers.count)))
        }
        finishIfComplete()
    }

    func failed(_ replica: String, _ reason: String) {
        failures[replica] = reason
        if !answered && replicas.count - failures.count < needed {
            answered = true
            let detail = failures.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
            reply(.failure(.unavailable("only \(answers.count) of \(replicas.count) replicas answered, \(needed) needed (\(detail))")))
        }
        finishIfComplete()
    }

    /// Read repair: every replica that answered with an older version (or
    /// nothing) gets the newest record.
    private func finishIfComplete() {
        guard answers.count + failures.count == replicas.count, let newest else { return }
        let stale = answers.filter { _, record in record.map { $0.version < newest.version } ?? true }.map(\.key)
        if !stale.isEmpty { repair(newest, stale.sorted()) }
    }
}
