import Etcd

/// A leader's write to etcd that did not happen, or may not have.
public struct ReplicatedWriteError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The term's guards failed: another replica leads (or nobody does); nothing was written.
        case deposed
        /// etcd could not be reached; nothing was written.
        case notWritten
        /// The write reached etcd but no answer came back: it may have been applied.
        case outcomeUnknown
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    /// Classifies an error of the etcd client.
    public init(_ error: any Error) {
        if case .outcomeUnknown? = error as? EtcdError {
            self.init(.outcomeUnknown, "\(error)")
        } else {
            self.init(.notWritten, "\(error)")
        }
    }
}

/// Writes of one leader term: etcd transactions guarded by the term
/// (`LeaderTerm.guards`), so they apply only while this replica still holds
/// the election key it won. etcd bounds the operations of one transaction
/// (`--max-txn-ops`, 128 by default), so a longer list is written in several
/// transactions of at most `maxOperations`, in order, each guarded: all of
/// them apply or, from the first failed one on, none.
public struct GuardedWrites: Sendable {
    public let client: EtcdClient
    public let term: LeaderTerm
    /// Operations per transaction (below etcd's default limit of 128, leaving room for the guards).
    public static let maxOperations = 100

    public init(client: EtcdClient, term: LeaderTerm) {
        self.client = client
        self.term = term
    }

    /// Applies `operations` (puts and deletes) while the term lasts.
    public func commit(_ operations: [Op]) throws(ReplicatedWriteError) {
        var start = 0
        while start < operations.count {
            let chunk = Array(operations[start..<min(operations.count, start + Self.maxOperations)])
            let result: TxnResult
            do {
                result = try client.txn(compare: term.guards, success: chunk)
            } catch {
                throw ReplicatedWriteError(error)
            }
            guard result.succeeded else {
                throw ReplicatedWriteError(.deposed, "this replica no longer holds the election key \(term.key) (revision \(term.createRevision))")
            }
            start += Self.maxOperations
        }
    }
}
