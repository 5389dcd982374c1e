/// A key and its value as etcd stores it, with the revisions that order every change.
public struct KeyValue: Sendable, Equatable, CustomStringConvertible {
    public let key: String
    public let value: [UInt8]
    /// The revision of the change that created the key (since its last deletion).
    public let createRevision: Int64
    /// The revision of the last change to the key.
    public let modRevision: Int64
    /// How many times the key was written since it was created (1 after the first put).
    public let version: Int64
    /// The lease the key is attached to; 0 for none.
    public let lease: Int64

    public init(key: String, value: [UInt8], createRevision: Int64, modRevision: Int64, version: Int64, lease: Int64) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    /// The value as UTF-8 text.
    public var string: String { String(decoding: value, as: UTF8.self) }

    public var description: String {
        "\(key)=\(string) (create \(createRevision), mod \(modRevision), version \(version), lease \(lease))"
    }
}

/// What a put answered: the store's revision after it.
public struct PutResult: Sendable, Equatable {
    /// The response header's revision: the revision the put created.
    public let revision: Int64
}

/// What a get of one key answered.
public struct GetResult: Sendable, Equatable {
    /// The key, or nil when it does not exist.
    public let kv: KeyValue?
    /// The store's revision when the read was served.
    public let revision: Int64
}

/// What a range read answered.
public struct RangeResult: Sendable, Equatable {
    /// The keys in byte order.
    public let kvs: [KeyValue]
    /// How many keys are in the range (more than `kvs.count` only with a limit).
    public let count: Int64
    /// The store's revision when the read was served.
    public let revision: Int64
}

/// What a delete answered.
public struct DeleteResult: Sendable, Equatable {
    /// How many keys were deleted (0 when none existed).
    public let deleted: Int64
    /// The store's revision after the delete (unchanged when nothing was deleted).
    public let revision: Int64
}

/// A lease etcd granted.
public struct LeaseGrant: Sendable, Equatable {
    /// The lease's id, for `put(key:value:lease:)`, `keepAliveOnce` and `revoke`.
    public let id: Int64
    /// The TTL in seconds etcd chose (what was asked for, or etcd's minimum
    /// if that was less).
    public let ttl: Int64
    public let revision: Int64
}

/// What a keepalive answered.
public struct KeepAliveResult: Sendable, Equatable {
    public let id: Int64
    /// Seconds the lease now has left; 0 means it had already expired (or was
    /// revoked) and the keys attached to it are gone.
    public let ttl: Int64
    public let revision: Int64
}

/// A lease's remaining time, as `/v3/lease/timetolive` tells it.
public struct LeaseTimeToLive: Sendable, Equatable {
    public let id: Int64
    /// Seconds left; -1 when the lease does not exist (expired or revoked).
    public let ttl: Int64
    /// The TTL it was granted with (0 when it does not exist).
    public let grantedTTL: Int64
    /// The keys attached to it.
    public let keys: [String]
    public let revision: Int64
}

/// What a revoke answered.
public struct RevokeResult: Sendable, Equatable {
    public let revision: Int64
}

/// One member's view of itself and its cluster (`/v3/maintenance/status`).
public struct MemberStatus: Sendable, Equatable {
    /// The member that answered.
    public let memberID: UInt64
    /// The member it believes is the raft leader (0 for none).
    public let leaderID: UInt64
    public let version: String
    public let raftTerm: UInt64
    public let revision: Int64
}

/// One condition of a transaction: compares one attribute of one key.
///
/// A key that does not exist compares as version 0, create_revision 0,
/// mod_revision 0 and lease 0, so `Compare.createRevision(key, .equal, 0)`
/// means "absent"; any compare of the value of a key that does not exist
/// fails, whatever the relation (etcd 3.4.23; the tests check both).
public struct Compare: Sendable, Equatable {
    public enum Relation: String, Sendable {
        case equal = "EQUAL"
        case notEqual = "NOT_EQUAL"
        case less = "LESS"
        case greater = "GREATER"
    }

    public enum Target: Sendable, Equatable {
        case value([UInt8])
        case version(Int64)
        case createRevision(Int64)
        case modRevision(Int64)
        /// The id of the lease the key is attached to (0: none).
        case lease(Int64)
    }

    public let key: String
    public let relation: Relation
    public let target: Target

    public init(key: String, _ relation: Relation, _ target: Target) {
        self.key = key
        self.relation = relation
        self.target = target
    }

    public static func value(_ key: String, _ relation: Relation, _ value: [UInt8]) -> Compare {
        Compare(key: key, relation, .value(value))
    }
    public static func value(_ key: String, _ relation: Relation, _ value: String) -> Compare {
        Compare(key: key, relation, .value(Array(value.utf8)))
    }
    public static func version(_ key: String, _ relation: Relation, _ version: Int64) -> Compare {
        Compare(key: key, relation, .version(version))
    }
    public static func createRevision(_ key: String, _ relation: Relation, _ revision: Int64) -> Compare {
        Compare(key: key, relation, .createRevision(revision))
    }
    public static func modRevision(_ key: String, _ relation: Relation, _ revision: Int64) -> Compare {
        Compare(key: key, relation, .modRevision(revision))
    }
    public static func lease(_ key: String, _ relation: Relation, _ lease: Int64) -> Compare {
        Compare(key: key, relation, .lease(lease))
    }
}

/// One operation of a transaction branch.
public enum Op: Sendable, Equatable {
    /// Writes `value` at `key`, attached to `lease` (0: none).
    case put(key: String, value: [UInt8], lease: Int64)
    /// Reads one key.
    case get(key: String)
    /// Reads every key that starts with the prefix.
    case getPrefix(String)
    /// Deletes one key.
    case delete(key: String)
    /// Deletes every key that starts with the prefix.
    case deletePrefix(String)

    /// A put of UTF-8 text.
    public static func put(_ key: String, _ value: String, lease: Int64 = 0) -> Op {
        .put(key: key, value: Array(value.utf8), lease: lease)
    }

    /// Whether the operation changes nothing (a read can be retried anywhere).
    var isRead: Bool {
        switch self {
        case .get, .getPrefix: return true
        case .put, .delete, .deletePrefix: return false
        }
    }
}

/// The answer to one operation of the branch a transaction ran, in order.
public enum OpResponse: Sendable, Equatable {
    case put(PutResult)
    case range(RangeResult)
    case delete(DeleteResult)
}

/// What a transaction answered.
public struct TxnResult: Sendable, Equatable {
    /// True when every compare held and the success branch ran; false when the failure branch ran.
    public let succeeded: Bool
    /// One answer per operation of the branch that ran.
    public let responses: [OpResponse]
    /// The store's revision after the transaction (one more than before if it wrote anything).
    public let revision: Int64
}

/// One change a watch saw.
public struct WatchEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case put
        case delete
    }

    public let kind: Kind
    public let key: String
    /// The value written (empty for a delete).
    public let value: [UInt8]
    /// The revision of the change; events arrive in increasing revision
    /// order, and the events of one transaction share one revision.
    public let modRevision: Int64
    /// For a put: the key's create revision, version and lease after it (0 for a delete).
    public let createRevision: Int64
    public let version: Int64
    public let lease: Int64

    public init(kind: Kind, key: String, value: [UInt8], modRevision: Int64, createRevision: Int64, version: Int64, lease: Int64) {
        self.kind = kind
        self.key = key
        self.value = value
        self.modRevision = modRevision
        self.createRevision = createRevision
        self.version = version
        self.lease = lease
    }

    /// The value as UTF-8 text.
    public var string: String { String(decoding: value, as: UTF8.self) }

    public var description: String {
        switch kind {
        case .put: return "put \(key)=\(string) @\(modRevision)"
        case .delete: return "delete \(key) @\(modRevision)"
        }
    }
}

/// The end of the key range that holds every key starting with `prefix`:
/// the prefix with its last byte below 0xff increased; `\0` (every key) for
/// an empty prefix or one of 0xff bytes only.
func prefixRangeEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
        if last < 0xff {
            end[end.count - 1] = last + 1
            return end
        }
        end.removeLast()
    }
    return [0]
}
