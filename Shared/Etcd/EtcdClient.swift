import Foundation
import Synchronization

/// A blocking client of etcd's v3 API through its JSON gateway (HTTP/1.1,
/// the `/v3/...` paths of etcd 3.4), over plain POSIX sockets.
///
/// Every call opens a connection to one member, sends one request, reads the
/// whole answer within `timeout`, and closes the connection. The client
/// remembers the member that answered last and starts there next time; when
/// a member cannot be reached, does not answer in time, or has no raft leader
/// (`etcdserver: no leader`), the call goes on to the next member:
///
/// - reads (get, range, a txn of gets only, keepalive, time-to-live) are
///   tried on every member in turn;
/// - changes (put, delete, a txn that writes, lease grant and revoke) go to
///   the next member only when the previous one certainly did not get them
///   (refused connection, connect timeout, no leader). When a change was
///   sent and the answer did not come back, the call throws
///   `EtcdError.outcomeUnknown` instead of sending it again, since etcd
///   may already have applied it; the next call starts at the next member.
///
/// One call takes at most `timeout` per member tried. Calls block the calling
/// thread: call them from a thread of your own, not from the cooperative pool
/// of Swift concurrency on a busy service. The client may be shared by any
/// number of threads.
///
/// Every result carries the revision of etcd's response header.
public final class EtcdClient: Sendable {
    /// The endpoints as given (`host:port`).
    public let endpoints: [String]
    /// How long one member may take to answer one request.
    public let timeout: Duration
    let members: [Endpoint]
    /// The index of the member that answered last: the first one tried.
    private let preferred = Mutex<Int>(0)

    /// A client of the members at `endpoints` (`host:port`, `http://host:port`,
    /// `[::1]:2379`); throws `EtcdError.invalidEndpoint` for one it cannot use.
    public init(endpoints: [String], timeout: Duration = .seconds(5)) throws {
        guard !endpoints.isEmpty else { throw EtcdError.invalidEndpoint("", reason: "no endpoints given") }
        members = try endpoints.map { try Endpoint(parsing: $0) }
        self.endpoints = members.map(\.description)
        self.timeout = timeout
    }

    /// A client of `host:port,host:port,...`, optionally spelled `etcd://host:port,...`.
    public convenience init(_ list: String, timeout: Duration = .seconds(5)) throws {
        let parsed = try Endpoint.list(list)
        try self.init(endpoints: parsed.map(\.description), timeout: timeout)
    }

    /// The member the next call tries first (the one that answered last).
    public var currentEndpoint: String { members[preferred.withLock { $0 }].description }

    var preferredIndex: Int { preferred.withLock { $0 } }

    // MARK: - Keys

    /// Writes `value` at `key`, attached to `lease` (0: none; the key is
    /// deleted when the lease ends). An unknown lease is an
    /// `EtcdError.server` with code 5 (`isLeaseNotFound`).
    @discardableResult
    public func put(key: String, value: [UInt8], lease: Int64 = 0) throws -> PutResult {
        var body: [String: Any] = ["key": base64(key), "value": base64(value)]
        if lease != 0 { body["lease"] = String(lease) }
        let response = try call("/v3/kv/put", body, retry: .ifNotSent, as: WirePutResponse.self)
        return PutResult(revision: response.header?.revision?.value ?? 0)
    }

    /// Writes UTF-8 text at `key`.
    @discardableResult
    public func put(key: String, value: String, lease: Int64 = 0) throws -> PutResult {
        try put(key: key, value: Array(value.utf8), lease: lease)
    }

    /// Reads one key: its value and revisions, or nil when it does not exist.
    /// With `deadline`, the call ends by then whatever `timeout` allows.
    public func get(key: String, before deadline: ContinuousClock.Instant? = nil) throws -> GetResult {
        let response = try call("/v3/kv/range", ["key": base64(key)], retry: .anywhere, before: deadline, as: WireRangeResponse.self)
        let result = response.result()
        return GetResult(kv: result.kvs.first, revision: result.revision)
    }

    /// Reads every key that starts with `prefix`, in byte order (an empty prefix reads every key).
    public func range(prefix: String) throws -> RangeResult {
        let prefixBytes = Array(prefix.utf8)
        let body: [String: Any] = ["key": base64(prefixBytes.isEmpty ? [0] : prefixBytes), "range_end": base64(prefixRangeEnd(prefixBytes))]
        return try call("/v3/kv/range", body, retry: .anywhere, as: WireRangeResponse.self).result()
    }

    /// Deletes one key; `deleted` is 0 when it did not exist.
    @discardableResult
    public func delete(key: String) throws -> DeleteResult {
        try call("/v3/kv/deleterange", ["key": base64(key)], retry: .ifNotSent, as: WireDeleteRangeResponse.self).result()
    }

    /// Deletes every key that starts with `prefix`.
    @discardableResult
    public func delete(prefix: String) throws -> DeleteResult {
        let prefixBytes = Array(prefix.utf8)
        let body: [String: Any] = ["key": base64(prefixBytes.isEmpty ? [0] : prefixBytes), "range_end": base64(prefixRangeEnd(prefixBytes))]
        return try call("/v3/kv/deleterange", body, retry: .ifNotSent, as: WireDeleteRangeResponse.self).result()
    }

    /// Discards the history before `revision` (etcd keeps every revision
    /// until compacted): watches from an older revision then fail with
    /// `EtcdError.compacted`.
    @discardableResult
    public func compact(revision: Int64) throws -> PutResult {
        let response = try call("/v3/kv/compaction", ["revision": String(revision)], retry: .ifNotSent, as: WirePutResponse.self)
        return PutResult(revision: response.header?.revision?.value ?? 0)
    }

    // MARK: - Transactions

    /// Runs `success` if every compare holds, else `failure`, atomically at
    /// one revision. For a leader that must write only while it still leads:
    /// compare that its election key still has the create revision (or the
    /// lease) it had when it won.
    public func txn(compare: [Compare], success: [Op], failure: [Op] = []) throws -> TxnResult {
        let body: [String: Any] = [
            "compare": compare.map(Self.json),
            "success": success.map(Self.json),
            "failure": failure.map(Self.json),
        ]
        let readOnly = (success + failure).allSatisfy(\.isRead)
        let response = try call("/v3/kv/txn", body, retry: readOnly ? .anywhere : .ifNotSent, as: WireTxnResponse.self)
        let revision = response.header?.revision?.value ?? 0
        let answers: [OpResponse] = (response.responses ?? []).map { op in
            if let range = op.responseRange { return .range(range.result(fallbackRevision: revision)) }
            if let delete = op.responseDeleteRange { return .delete(delete.result(fallbackRevision: revision)) }
            return .put(PutResult(revision: op.responsePut?.header?.revision?.value ?? revision))
        }
        return TxnResult(succeeded: response.succeeded ?? false, responses: answers, revision: revision)
    }

    static func json(_ compare: Compare) -> [String: Any] {
        var out: [String: Any] = ["key": base64(compare.key), "result": compare.relation.rawValue]
        switch compare.target {
        case let .value(value):
            out["target"] = "VALUE"
            out["value"] = base64(value)
        case let .version(version):
            out["target"] = "VERSION"
            out["version"] = String(version)
        case let .createRevision(revision):
            out["target"] = "CREATE"
            out["create_revision"] = String(revision)
        case let .modRevision(revision):
            out["target"] = "MOD"
            out["mod_revision"] = String(revision)
        case let .lease(lease):
            out["target"] = "LEASE"
            out["lease"] = String(lease)
        }
        return out
    }

    static func json(_ op: Op) -> [String: Any] {
        func prefixRange(_ prefix: String) -> [String: Any] {
            let bytes = Array(prefix.utf8)
            return ["key": base64(bytes.isEmpty ? [0] : bytes), "range_end": base64(prefixRangeEnd(bytes))]
        }
        switch op {
        case let .put(key, value, lease):
            var put: [String: Any] = ["key": base64(key), "value": base64(value)]
            if lease != 0 { put["lease"] = String(lease) }
            return ["request_put": put]
        case let .get(key):
            return ["request_range": ["key": base64(key)]]
        case let .getPrefix(prefix):
            return ["request_range": prefixRange(prefix)]
        case let .delete(key):
            return ["request_delete_range": ["key": base64(key)]]
        case let .deletePrefix(prefix):
            return ["request_delete_range": prefixRange(prefix)]
        }
    }

    // MARK: - Leases

    /// Grants a lease of `ttl` seconds. etcd raises a TTL below its minimum
    /// (1.5 election timeouts, rounded up to a second) to that minimum.
    public func grant(ttl: Int64) throws -> LeaseGrant {
        let path = "/v3/lease/grant"
        let (endpoint, body) = try exchange(path, ["TTL": ttl], retry: .ifNotSent)
        let response = try decode(body, endpoint: endpoint, path: path, as: WireLeaseGrantResponse.self)
        if let error = response.error, !error.isEmpty {
            throw EtcdError.server(endpoint: endpoint.description, httpStatus: 200, code: nil, message: error)
        }
        guard let id = response.id?.value, id != 0 else {
            throw EtcdError.malformedResponse(endpoint: endpoint.description, path: path, reason: "no lease ID", excerpt: excerpt(body[...]))
        }
        return LeaseGrant(id: id, ttl: response.ttl?.value ?? 0, revision: response.header?.revision?.value ?? 0)
    }

    /// Renews lease `id` once: its TTL starts again. The answer's `ttl` is
    /// the time it now has; 0 means it had expired already (or was revoked):
    /// its keys are gone and it cannot be renewed. With `deadline`, the call
    /// ends by then whatever `timeout` allows (a leader must not wait past
    /// the end of the lease it is renewing).
    @discardableResult
    public func keepAliveOnce(_ id: Int64, before deadline: ContinuousClock.Instant? = nil) throws -> KeepAliveResult {
        // A stream in gRPC: the gateway answers one message per request
        // message and ends the answer after the request body ends.
        let (endpoint, body) = try exchange("/v3/lease/keepalive", ["ID": String(id)], retry: .anywhere, before: deadline)
        let message = try decodeStreamMessage(body, endpoint: endpoint, path: "/v3/lease/keepalive",
                                              as: WireLeaseKeepAliveResponse.self)
        return KeepAliveResult(id: message.id?.value ?? id, ttl: message.ttl?.value ?? 0,
                               revision: message.header?.revision?.value ?? 0)
    }

    /// Ends lease `id` now: the keys attached to it are deleted. An unknown
    /// (expired or already revoked) lease is an `EtcdError.server` with
    /// code 5, for which `isLeaseNotFound` is true.
    @discardableResult
    public func revoke(_ id: Int64) throws -> RevokeResult {
        let response = try call("/v3/lease/revoke", ["ID": String(id)], retry: .ifNotSent, as: WirePutResponse.self)
        return RevokeResult(revision: response.header?.revision?.value ?? 0)
    }

    /// How long lease `id` has left (-1: it does not exist) and its keys.
    public func timeToLive(_ id: Int64) throws -> LeaseTimeToLive {
        let response = try call("/v3/lease/timetolive", ["ID": String(id), "keys": true], retry: .anywhere,
                                as: WireLeaseTimeToLiveResponse.self)
        return LeaseTimeToLive(id: response.id?.value ?? id, ttl: response.ttl?.value ?? 0,
                               grantedTTL: response.grantedTTL?.value ?? 0,
                               keys: (response.keys ?? []).map { String(decoding: $0.bytes, as: UTF8.self) },
                               revision: response.header?.revision?.value ?? 0)
    }

    // MARK: - Members

    /// What member `endpoint` (one of `endpoints`) says about itself: its id,
    /// the raft leader it follows (0 while it has none), its version. Asks
    /// that member only, and is answered by a member without a leader too.
    public func status(of endpoint: String) throws -> MemberStatus {
        let target = try Endpoint(parsing: endpoint)
        guard let index = members.firstIndex(of: target) else {
            throw EtcdError.invalidEndpoint(endpoint, reason: "not one of this client's endpoints \(endpoints)")
        }
        let (from, body) = try exchange("/v3/maintenance/status", [:], retry: .anywhere, only: index, requireLeader: false)
        let response = try decode(body, endpoint: from, path: "/v3/maintenance/status", as: WireStatusResponse.self)
        return MemberStatus(memberID: response.header?.memberID?.value ?? 0, leaderID: response.leader?.value ?? 0,
                            version: response.version ?? "", raftTerm: response.raftTerm?.value ?? 0,
                            revision: response.header?.revision?.value ?? 0)
    }

    // MARK: - Watches

    /// Watches every key that starts with `prefix`, from revision
    /// `fromRevision` on (inclusive; 0: changes after now). See `EtcdWatch`.
    public func watch(prefix: String, fromRevision: Int64 = 0) -> EtcdWatch {
        let bytes = Array(prefix.utf8)
        return EtcdWatch(client: self, key: bytes.isEmpty ? [0] : bytes, rangeEnd: prefixRangeEnd(bytes), fromRevision: fromRevision)
    }

    /// Watches one key, from revision `fromRevision` on (0: changes after now).
    public func watch(key: String, fromRevision: Int64 = 0) -> EtcdWatch {
        EtcdWatch(client: self, key: Array(key.utf8), rangeEnd: nil, fromRevision: fromRevision)
    }

    // MARK: - Requests

    /// Whether a request may go to another member after it was sent.
    enum Retry {
        /// It changes nothing: try every member.
        case anywhere
        /// It changes state: only after a failure where etcd certainly did not get it.
        case ifNotSent
    }

    /// One request, decoded from the 200 answer as `type`.
    private func call<T: Decodable>(_ path: String, _ body: [String: Any], retry: Retry, before deadline: ContinuousClock.Instant? = nil,
                                    as type: T.Type) throws -> T {
        let (endpoint, answer) = try exchange(path, body, retry: retry, before: deadline)
        return try decode(answer, endpoint: endpoint, path: path, as: type)
    }

    func decode<T: Decodable>(_ body: [UInt8], endpoint: Endpoint, path: String, as type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw EtcdError.malformedResponse(endpoint: endpoint.description, path: path,
                                              reason: describeDecoding(error), excerpt: excerpt(body[...]))
        }
    }

    /// The first message of a streamed answer (`{"result": ...}` or `{"error": ...}` per line).
    private func decodeStreamMessage<T: Decodable>(_ body: [UInt8], endpoint: Endpoint, path: String, as type: T.Type) throws -> T {
        let line = body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true).first ?? []
        let message = try decode(Array(line), endpoint: endpoint, path: path, as: WireStreamMessage<T>.self)
        if let error = message.error {
            throw EtcdError.server(endpoint: endpoint.description, httpStatus: error.httpCode ?? 200,
                                   code: error.grpcCode, message: error.message ?? "")
        }
        guard let result = message.result else {
            throw EtcdError.malformedResponse(endpoint: endpoint.description, path: path,
                                              reason: "a stream message with neither result nor error", excerpt: excerpt(body[...]))
        }
        return result
    }

    /// The order in which to try members: the preferred one, then the rest in turn.
    func memberOrder() -> [Int] {
        let start = preferredIndex
        return (0..<members.count).map { (start + $0) % members.count }
    }

    /// Sends `body` to `path` on one member after another until one answers
    /// 200; returns that member and the answer's body. A non-200 answer is
    /// thrown as `EtcdError.server` (after "no leader", the next member is tried).
    /// With `callDeadline`, no member is tried, nor waited for, past it.
    func exchange(_ path: String, _ body: [String: Any], retry: Retry, only: Int? = nil,
                  requireLeader: Bool = true, before callDeadline: ContinuousClock.Instant? = nil) throws -> (Endpoint, [UInt8]) {
        let payload: [UInt8]
        do {
            payload = [UInt8](try JSONSerialization.data(withJSONObject: body))
        } catch {
            preconditionFailure("etcd request for \(path) is not JSON-serializable: \(error)")
        }
        let order = only.map { [$0] } ?? memberOrder()
        var failures: [EndpointFailure] = []
        for index in order {
            let endpoint = members[index]
            let now = ContinuousClock.now
            if let callDeadline, now >= callDeadline {
                failures.append(EndpointFailure(endpoint: endpoint.description, reason: "not tried: the call's deadline passed"))
                continue
            }
            let deadline = min(now + timeout, callDeadline ?? now + timeout)
            let outcome = Result { () throws(TransportFailure) -> (HTTPHead, [UInt8]) in
                let connection = try HTTPConnection.connect(to: endpoint, deadline: deadline)
                defer { connection.close() }
                try connection.sendPost(path: path, body: payload, requireLeader: requireLeader, connectionClose: true, deadline: deadline)
                let head = try connection.readHead(deadline)
                return (head, try connection.readBody(head, deadline))
            }
            switch outcome {
            case let .success((head, answer)):
                if head.status == 200 {
                    if only == nil { preferred.withLock { $0 = index } }
                    return (endpoint, answer)
                }
                let error = Self.serverError(endpoint: endpoint, status: head.status, body: answer)
                guard case let .server(_, _, code, message) = error, code == EtcdError.Code.unavailable,
                      message.contains("no leader") || retry == .anywhere else {
                    throw error
                }
                // This member has no leader (it refuses before proposing
                // anything: safe to send a change elsewhere), or a read
                // failed for want of one.
                failures.append(EndpointFailure(endpoint: endpoint.description, reason: message))
            case let .failure(failure):
                failures.append(EndpointFailure(endpoint: endpoint.description, reason: failure.reason))
                if failure.phase == .ambiguous && retry == .ifNotSent {
                    moveOn(from: index)
                    throw EtcdError.outcomeUnknown(endpoint: endpoint.description, reason: failure.reason,
                                                   earlier: Array(failures.dropLast()))
                }
            }
        }
        if only == nil, let first = order.first { moveOn(from: first) }
        throw EtcdError.unavailable(failures)
    }

    /// After `index` failed, the next call starts at the member after it.
    private func moveOn(from index: Int) {
        preferred.withLock { if $0 == index { $0 = (index + 1) % members.count } }
    }

    /// A non-200 answer as an error: etcd's JSON error body if it is one,
    /// in the unary shape (`{"error": "...", "code": 14}`) or the streams'
    /// (`{"error": {"grpc_code": 14, "message": "..."}}`, which a watch
    /// refused by a member without a leader gets, with HTTP 503).
    static func serverError(endpoint: Endpoint, status: Int, body: [UInt8]) -> EtcdError {
        if let parsed = try? JSONDecoder().decode(WireErrorBody.self, from: Data(body)),
           parsed.code != nil || parsed.message != nil || parsed.error != nil {
            return .server(endpoint: endpoint.description, httpStatus: status, code: parsed.code,
                           message: parsed.message ?? parsed.error ?? "")
        }
        if let parsed = try? JSONDecoder().decode(WireStreamMessage<WireErrorBody>.self, from: Data(body)),
           let error = parsed.error {
            return .server(endpoint: endpoint.description, httpStatus: status, code: error.grpcCode, message: error.message ?? "")
        }
        return .server(endpoint: endpoint.description, httpStatus: status, code: nil, message: excerpt(body[...]))
    }
}
