/// One endpoint that could not serve a request, and why.
public struct EndpointFailure: Sendable, Equatable, CustomStringConvertible {
    /// `host:port` as the client spells it.
    public let endpoint: String
    /// What went wrong there: `connect: Connection refused`, `no answer in
    /// time`, `etcdserver: no leader`, `not an HTTP response: '...'`.
    public let reason: String

    public init(endpoint: String, reason: String) {
        self.endpoint = endpoint
        self.reason = reason
    }

    public var description: String { "\(endpoint) (\(reason))" }
}

/// Everything the etcd client throws.
public enum EtcdError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An endpoint string the client cannot use (bad port, https, empty list).
    case invalidEndpoint(String, reason: String)
    /// No endpoint served the request: each one tried, and why it failed.
    /// Requests that change nothing are tried on every endpoint; changes are
    /// sent to the next endpoint only when the previous one certainly did
    /// not receive them (see `outcomeUnknown`).
    case unavailable([EndpointFailure])
    /// A change (put, delete, txn, lease grant or revoke) was sent to
    /// `endpoint` but no complete answer came back, so etcd may or may not
    /// have applied it; it was not sent again. Read back, or retry with a
    /// transaction whose compare makes a second application harmless.
    /// `earlier` lists endpoints that failed before this one.
    case outcomeUnknown(endpoint: String, reason: String, earlier: [EndpointFailure])
    /// etcd answered with an error: HTTP status, gRPC code (nil when the body
    /// was not etcd's JSON error) and message, e.g. code 5 `etcdserver:
    /// requested lease not found`, code 11 `mvcc: required revision has been compacted`.
    case server(endpoint: String, httpStatus: Int, code: Int?, message: String)
    /// An HTTP answer whose body is not the JSON etcd sends: what was wrong and its first bytes.
    case malformedResponse(endpoint: String, path: String, reason: String, excerpt: String)
    /// A watch asked for events from `requestedRevision`, but etcd compacted
    /// history up to `compactRevision`: events in between are lost for good,
    /// so the watcher must read the current state again and watch from there.
    case compacted(requestedRevision: Int64, compactRevision: Int64)
    /// etcd ended a watch for a reason other than compaction.
    case watchCanceled(endpoint: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidEndpoint(text, reason):
            return "invalid etcd endpoint '\(text)': \(reason)"
        case let .unavailable(failures):
            return "no etcd endpoint could serve the request: "
                + failures.map(\.description).joined(separator: ", ")
        case let .outcomeUnknown(endpoint, reason, earlier):
            let before = earlier.isEmpty ? "" : " (before it: " + earlier.map(\.description).joined(separator: ", ") + ")"
            return "etcd at \(endpoint) received the change but gave no complete answer (\(reason)); "
                + "it may or may not have been applied\(before)"
        case let .server(endpoint, status, code, message):
            let codeText = code.map { " code \($0)" } ?? ""
            return "etcd at \(endpoint) answered HTTP \(status)\(codeText): \(message)"
        case let .malformedResponse(endpoint, path, reason, excerpt):
            return "malformed answer from \(endpoint) to \(path): \(reason); the body begins \(excerpt)"
        case let .compacted(requested, compact):
            return "etcd compacted its history up to revision \(compact); events from revision \(requested) are gone"
        case let .watchCanceled(endpoint, reason):
            return "etcd at \(endpoint) canceled the watch: \(reason)"
        }
    }

    /// gRPC status codes etcd puts in its error bodies.
    public enum Code {
        public static let invalidArgument = 3
        public static let notFound = 5
        public static let failedPrecondition = 9
        public static let outOfRange = 11
        public static let unavailable = 14
    }

    /// etcd says the lease does not exist (expired or revoked).
    public var isLeaseNotFound: Bool {
        if case let .server(_, _, code, message) = self {
            return code == Code.notFound && message.contains("lease not found")
        }
        return false
    }
}
