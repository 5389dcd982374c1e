/// The endpoints of one service and which of them calls go to first: one
/// endpoint for a plain service, several for a replicated one (placement and
/// the lock service run as replicas, one leader and followers). The preferred
/// endpoint is the client's guess of the leader; a follower's refusal that
/// names the leader moves it there, failures move it on to the next one.
///
/// A pure value: `RPCClient` keeps one under its lock, `ReactorClient` on its
/// reactor thread; both follow the same rules through ``FailoverCall``.
public struct FailoverTargets: Sendable, Equatable {
    /// At most this many endpoints: a leader named by a reply is not followed
    /// beyond it, so a misbehaving server cannot make a client connect without end.
    public static let maxEndpoints = 16

    /// The endpoints, normalised (`tcp://host:port`), in the order given;
    /// leaders named by replies and not among them are appended.
    public private(set) var endpoints: [String]
    /// The index of the endpoint calls go to first.
    public private(set) var preferred = 0

    /// Several endpoints, normalised; duplicates are dropped. Not empty.
    public init(_ endpoints: [String]) {
        var unique: [String] = []
        for endpoint in endpoints.map(Endpoint.endpoint(for:)) where !unique.contains(endpoint) { unique.append(endpoint) }
        precondition(!unique.isEmpty, "a client needs at least one endpoint")
        self.endpoints = unique
    }

    /// The preferred endpoint.
    public var current: String { endpoints[preferred] }

    /// The index of `endpoint` (normalised as `Endpoint.endpoint(for:)` does), if listed.
    public func index(of endpoint: String) -> Int? {
        endpoints.firstIndex(of: Endpoint.endpoint(for: endpoint))
    }

    /// Lists `endpoint` (normalised) and returns its index; nil when the list is full.
    public mutating func add(_ endpoint: String) -> Int? {
        if let index = index(of: endpoint) { return index }
        guard endpoints.count < Self.maxEndpoints else { return nil }
        endpoints.append(Endpoint.endpoint(for: endpoint))
        return endpoints.count - 1
    }

    /// Calls go to `index` first from now on.
    public mutating func prefer(_ index: Int) {
        precondition(endpoints.indices.contains(index))
        preferred = index
    }

    /// After a failure at `index`: the preference moves to the next endpoint,
    /// unless it already moved away from `index` (another call failed there
    /// first, or was redirected). Returns the endpoint to try next.
    public mutating func moveOn(from index: Int) -> Int {
        if preferred == index { preferred = (index + 1) % endpoints.count }
        return preferred
    }
}

/// The one place that decides what a call does after each attempt, for both
/// clients (`RPCClient` on tasks, `ReactorClient` on a reactor), given the
/// endpoints of the service (``FailoverTargets``):
///
/// - A refusal by a follower (UNAVAILABLE with not_leader) was never
///   applied, so it is sent again whatever the method: at once to the leader
///   it names (a connection is added if the leader is not listed; a second
///   redirect in one call backs off first, as the hints may be going round
///   while an election settles), or, without a name (no leader elected yet),
///   after a short pause with jitter to the next endpoint, until the call's
///   deadline.
/// - A request that found no connection (`notSent`) never left the process:
///   with several endpoints it goes to the next one at once (an attempt waits
///   only ``connectWait`` for a connection then, so a dead replica costs that
///   much); with one it waits again after a pause.
/// - A request whose reply did not come (`timedOut`) or whose connection
///   dropped (`disconnected`) may have been applied: an idempotent method is
///   sent again (to the next endpoint when there are several) within
///   `maxAttempts`; any other fails, and with several endpoints the
///   preference still moves on, so the next call starts at the next endpoint.
/// - Any other UNAVAILABLE is retried on the same endpoint for an idempotent
///   method when `retriesUnavailable` (RPCClient's rule; a reactor's callers
///   decide for themselves).
struct FailoverCall {
    /// How long an attempt waits for a connection before it moves on, when the
    /// service has several endpoints (a replica killed with SIGKILL never
    /// connects; a live one on loopback or a LAN connects within milliseconds).
    static let connectWait = Duration.milliseconds(300)
    /// The longest pause before asking again while no leader is elected.
    static let maxLeaderPause = Duration.milliseconds(250)

    enum Next {
        /// Send again to the endpoint at this index after this pause (zero: at once).
        case send(to: Int, after: Duration)
        case fail(RPCError)
    }

    let path: String
    let idempotent: Bool
    /// The whole call's deadline, retries included.
    let deadline: ContinuousClock.Instant
    let timeout: Duration
    let maxAttempts: Int
    let attemptTimeout: Duration?
    let retriesUnavailable: Bool
    let maxBackoff: Duration
    private var backoff: Duration
    /// Attempts that reached the service (or may have), the ones `maxAttempts` counts.
    private var sent = 0
    private var unsent = 0
    private var redirects = 0

    init(path: String, idempotent: Bool, timeout: Duration, now: ContinuousClock.Instant, maxAttempts: Int = 5,
         attemptTimeout: Duration? = nil, retriesUnavailable: Bool, initialBackoff: Duration = .milliseconds(20),
         maxBackoff: Duration = .seconds(1)) {
        self.path = path
        self.idempotent = idempotent
        self.timeout = timeout
        deadline = now + timeout
        self.maxAttempts = max(1, maxAttempts)
        self.attemptTimeout = attemptTimeout
        self.retriesUnavailable = retriesUnavailable
        self.maxBackoff = maxBackoff
        backoff = initialBackoff
    }

    /// An attempt starting now: until when it may wait for a connection, and
    /// for its reply.
    func attemptDeadlines(now: ContinuousClock.Instant, endpoints: Int) -> (sendBy: ContinuousClock.Instant, replyBy: ContinuousClock.Instant) {
        var replyBy = deadline
        if idempotent, let attemptTimeout { replyBy = min(deadline, now + attemptTimeout) }
        let sendBy = endpoints > 1 ? min(replyBy, now + Self.connectWait) : replyBy
        return (sendBy, replyBy)
    }

    /// What to do after the attempt at `index` ended with `result` (not an OK reply).
    mutating func next(after result: AttemptResult, at index: Int, targets: some FailoverEndpoints,
                       now: ContinuousClock.Instant) -> Next {
        let endpoint = targets.endpoint(at: index)
        let replicated = targets.count > 1
        switch result {
        case .reply(let reply) where reply.header.notLeader:
            let refusal = RPCError(reply: reply.header)
            if !reply.header.leader.isEmpty, let leader = targets.follow(leader: reply.header.leader), leader != index {
                redirects += 1
                return send(to: leader, after: redirects == 1 ? .zero : pause(now: now, cap: Self.maxLeaderPause), or: refusal, now: now)
            }
            return send(to: targets.moveOn(from: index), after: pause(now: now, cap: Self.maxLeaderPause), or: refusal, now: now)
        case .reply(let reply):
            sent += 1
            let error = RPCError(reply: reply.header)
            guard reply.header.code == .unavailable, idempotent, retriesUnavailable, sent < maxAttempts else { return .fail(error) }
            return send(to: index, after: pause(now: now), or: error, now: now)
        case .notSent:
            unsent += 1
            let error = RPCError(.unavailable, "no connection to \(endpoint)", neverSent: true)
            if replicated { return send(to: targets.moveOn(from: index), after: .zero, or: error, now: now) }
            guard unsent < maxAttempts * 4 else { return .fail(error) }
            return send(to: index, after: pause(now: now), or: error, now: now)
        case .timedOut:
            return afterLoss(at: index, targets: targets, now: now,
                             error: .deadlineExceeded("no reply from \(endpoint) to \(path) within \(timeout.shortDescription)"))
        case .disconnected:
            return afterLoss(at: index, targets: targets, now: now,
                             error: .unavailable("connection to \(endpoint) lost with \(path) in flight; it may have been applied"))
        case .closed:
            return .fail(.unavailable("connection to \(endpoint) closed"))
        case .cancelled:
            return .fail(.cancelled("call to \(path) cancelled"))
        }
    }

    /// After an attempt that may have been applied: only an idempotent method goes again.
    private mutating func afterLoss(at index: Int, targets: some FailoverEndpoints, now: ContinuousClock.Instant,
                                    error: RPCError) -> Next {
        sent += 1
        let replicated = targets.count > 1
        let next = replicated ? targets.moveOn(from: index) : index
        guard idempotent, retriesUnavailable || replicated, sent < maxAttempts else { return .fail(error) }
        return send(to: next, after: pause(now: now), or: error, now: now)
    }

    /// Sends to `index` after `pause`, or fails with `error` when that would pass the deadline.
    private func send(to index: Int, after pause: Duration, or error: RPCError, now: ContinuousClock.Instant) -> Next {
        now + pause < deadline ? .send(to: index, after: pause) : .fail(error)
    }

    /// The next pause: the backoff with jitter, never past the deadline; the backoff doubles.
    private mutating func pause(now: ContinuousClock.Instant, cap: Duration? = nil) -> Duration {
        let limit = min(maxBackoff, cap ?? maxBackoff)
        let pause = min(deadline - now, min(limit, backoff) * Double.random(in: 0.5...1.0))
        backoff = min(maxBackoff, backoff * 2)
        return max(.zero, pause)
    }
}

/// What ``FailoverCall`` needs from a client: its endpoints, and a way to
/// follow a leader hint (connecting to an endpoint not listed yet).
protocol FailoverEndpoints {
    var count: Int { get }
    func endpoint(at index: Int) -> String
    /// Moves the preference past `index` (see ``FailoverTargets/moveOn(from:)``).
    func moveOn(from index: Int) -> Int
    /// Prefers `leader`, connecting to it if it is not listed; its index, or
    /// nil when it cannot be used (malformed, or the list is full).
    func follow(leader: String) -> Int?
}
