import RPC
import RingProtocol
import StorageEngine

/// What goes in and out of the replication core: its settings, a client's
/// write, how a request ended, a replica's answer, and the directives the shell
/// carries out.
extension Replication {
    /// What the core needs to know of its node.
    struct Settings {
        /// This node's address: replica writes and reads to it stay local, and a hint it keeps is stored here.
        var address: String
        /// The writer half of the versions this node stamps.
        var writer: UInt64
        var maxKeyBytes: Int
        var maxValueBytes: Int

        /// Why a key (and value: `nil` for none, or a delete) cannot be stored; `nil` when it can.
        func problem(key: [UInt8], value: [UInt8]?) -> RPCError? {
            if key.isEmpty { return .invalidArgument("the key is empty") }
            if key.count > maxKeyBytes {
                return .invalidArgument("the key is \(key.count) bytes; the limit is \(maxKeyBytes)")
            }
            if let value, value.count > maxValueBytes {
                return .invalidArgument("the value is \(value.count) bytes; the limit is \(maxValueBytes)")
            }
            return nil
        }
    }

    /// A client's put (a value) or delete (`nil`), possibly conditional or fenced.
    struct Write {
        var key: [UInt8]
        var value: [UInt8]?
        var quorum = WireQuorum()
        /// Only if the current version is this one.
        var ifVersion: Version?
        /// Only if the key has no live value.
        var ifAbsent = false
        var fence: WireFence?
    }

    /// How a client request ended.
    enum Outcome: Equatable {
        case written(Version, acks: Int)
        /// The newest record the quorum held (a tombstone or `nil`: not found) and how many replicas answered.
        case read(VersionedRecord?, replies: Int)
        case failed(RPCError)
    }

    /// What a replica made of one record of a write.
    enum WriteAnswer: Equatable {
        case acknowledged
        /// A fenced record refused: the replica has seen `highestToken` for its lock and key.
        case refused(highestToken: UInt64)
        /// The replica, on a newer plan, does not keep the key and did not store it.
        case notReplica(plan: UInt64)
        /// The call failed (transport, deadline, commit): the record may or may not be stored.
        case failed(String)
    }

    /// What the shell must do.
    enum Directive {
        /// Answer ``Replication/stamped(_:timestamp:)`` with a new timestamp from the node's
        /// clock, first moved past `after` when given (the version a conditional put read).
        case stamp(OperationID, after: UInt64?)
        /// Write the record to the replica (the local store when it is this node) and
        /// answer ``Replication/written(_:by:_:)``. `plan` is the plan version the write
        /// was routed by: a replica on a newer plan that no longer keeps the key refuses it.
        case write(OperationID, VersionedRecord, to: String, plan: UInt64)
        /// Read the key from the replica and answer ``Replication/answered(_:by:_:)``
        /// or ``Replication/readFailed(_:by:_:)``.
        case read(OperationID, key: [UInt8], from: String)
        /// Hinted handoff: `via` keeps the record for `target` (this node stores it itself when
        /// `via` is its address); when sending it to `via` fails, answer ``Replication/standInFailed(_:for:)``.
        case hint(VersionedRecord, for: String, via: String)
        /// Read repair: write the newest record to a replica that was behind; nobody waits for it.
        /// `plan` is the plan version the read was routed by, as for ``write(_:_:to:plan:)``.
        case repair(VersionedRecord, to: String, plan: UInt64)
        /// Reply to the client.
        case reply(Token, Outcome)
    }
}

extension Replication.Directive: Equatable where Token: Equatable {}
