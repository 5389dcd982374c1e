import ControlPlane
import Etcd
import Foundation

/// Where the lock service's durable state goes: SQLite (`LockStore`, the
/// embedded default) or etcd (`EtcdLockStore`), under the same `LockTable`.
public protocol LockStateStore: AnyObject {
    /// Every persisted lock.
    func load() throws -> [LockRecord]
    /// The token counter: the highest token ever issued.
    func loadLastToken() throws -> UInt64
    /// Writes `changes`; returns once they are durable.
    func save(_ changes: LockChanges) throws(LockStoreError)
    /// Commits so far, for Health.
    var commits: Int { get }
}

extension LockStore: LockStateStore {}

/// The lock service's state in etcd, for one leader term: a key per lock
/// name under `<prefix>/names/` (its record as JSON, with its holder and,
/// unlike SQLite, its queue) and the token counter at `<prefix>/last_token`.
/// A turn's changes are written by transactions guarded by the term, the
/// counter first, so tokens never go backwards: not across leaders (each
/// reads the counter its predecessor wrote), nor across etcd restarts
/// (etcd keeps what it acknowledged).
public final class EtcdLockStore: LockStateStore {
    private let writes: GuardedWrites
    private let names: String
    private let counterKey: String
    public private(set) var commits = 0

    /// The state under `prefix` (e.g. `/ringstore/lock`), written in `term`.
    public init(client: EtcdClient, prefix: String, term: LeaderTerm) {
        writes = GuardedWrites(client: client, term: term)
        names = prefix + "/names/"
        counterKey = prefix + "/last_token"
    }

    public func load() throws -> [LockRecord] {
        try writes.client.range(prefix: names).kvs.map { kv in
            do {
                return try JSONDecoder().decode(StoredLock.self, from: Data(kv.value)).record
            } catch {
                throw LockStoreError("etcd key \(kv.key) does not hold a lock record: \(error)")
            }
        }
    }

    public func loadLastToken() throws -> UInt64 {
        guard let kv = try writes.client.get(key: counterKey).kv else { return 0 }
        guard let token = UInt64(kv.string) else { throw LockStoreError("etcd key \(counterKey) holds '\(kv.string)', not a token") }
        return token
    }

    /// A `ReplicatedWriteError` in `LockStoreError.write` says whether this replica still leads.
    public func save(_ changes: LockChanges) throws(LockStoreError) {
        var operations: [Op] = [.put(counterKey, String(changes.lastToken))]
        operations += changes.forgotten.map { .delete(key: names + $0) }
        do {
            for record in changes.records {
                operations.append(.put(key: names + record.name, value: Array(try JSONEncoder().encode(StoredLock(record))), lease: 0))
            }
        } catch {
            throw LockStoreError("cannot encode a lock record: \(error)")
        }
        do {
            try writes.commit(operations)
        } catch {
            var failure = LockStoreError("cannot write \(changes.records.count) lock records and \(changes.forgotten.count) removals to etcd: \(error)")
            failure.write = error
            throw failure
        }
        commits += 1
    }
}

/// A lock record as etcd keeps it (durations in microseconds).
struct StoredLock: Codable {
    struct Holder: Codable {
        var owner: String
        var token: UInt64
        var ttlMicros: Int64
        var guardTTLMicros: Int64
        var expiresWallMicros: Int64
        var session: String?
        var attempt: UInt64
    }

    struct Waiter: Codable {
        var owner: String
        var attempt: UInt64
        var ttlMicros: Int64
        var deadlineWallMicros: Int64
        var session: String?
    }

    var name: String
    var lastToken: UInt64
    var holder: Holder?
    var waiters: [Waiter]

    init(_ record: LockRecord) {
        name = record.name
        lastToken = record.lastToken
        holder = record.holder.map {
            Holder(owner: $0.owner, token: $0.token, ttlMicros: $0.ttl.wholeMicroseconds, guardTTLMicros: $0.guardTTL.wholeMicroseconds,
                   expiresWallMicros: $0.expiresWallMicros, session: $0.session, attempt: $0.attempt)
        }
        waiters = record.waiters.map {
            Waiter(owner: $0.owner, attempt: $0.attempt, ttlMicros: $0.ttl.wholeMicroseconds, deadlineWallMicros: $0.deadlineWallMicros,
                   session: $0.session)
        }
    }

    var record: LockRecord {
        LockRecord(name: name, lastToken: lastToken, holder: holder.map {
            LockRecord.Holder(owner: $0.owner, token: $0.token, ttl: .microseconds($0.ttlMicros), guardTTL: .microseconds($0.guardTTLMicros),
                              expiresWallMicros: $0.expiresWallMicros, session: $0.session, attempt: $0.attempt)
        }, waiters: waiters.map {
            LockRecord.Waiter(owner: $0.owner, attempt: $0.attempt, ttl: .microseconds($0.ttlMicros),
                              deadlineWallMicros: $0.deadlineWallMicros, session: $0.session)
        })
    }
}
