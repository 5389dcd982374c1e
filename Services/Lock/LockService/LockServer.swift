import Basics
import ControlPlane
import Foundation
import Logging
import RPC
import RingProtocol
import ServiceHost
import SwiftProtobuf

/// The lock service on its reactor thread: the `LockTable` state machine plus
/// the I/O it asks for.
///
/// Every handler applies its request to the table at once and parks the
/// request; at the end of the reactor turn the locks that changed are written
/// in one SQLite transaction (group commit, fsynced), then the turn's events
/// are published and its replies sent. A grant, a ttl change or a release is
/// therefore only answered once it is durable; if the write fails those
/// answers are INTERNAL errors, and the records are written again with the
/// next commit. A queued acquire stays parked until the lock passes to it, its
/// wait (bounded by the request's own deadline) runs out, its client cancels
/// it, or its client's connection closes. A grant whose reply finds the
/// client's connection gone is taken back and the lock passes on.
public final class LockServer {
    public let rpc: RPCServer
    public let events: EventPublisher
    /// The state machine; read it on the reactor thread only.
    public internal(set) var table: LockTable
    /// Where the table's changes go; nil while a follower replica.
    public internal(set) var store: (any LockStateStore)?
    /// Leader or follower: with the embedded store, leader for good.
    public let control: ReplicaControl
    let limits: LockLimits
    let forgetAfter: Duration
    let reactor: Reactor
    private let security: ServerSecurity?
    private let origin: ContinuousClock.Instant
    var logger: Logger
    /// Queued acquires by waiter id.
    var parked: [UInt64: RequestContext] = [:]
    /// The queued acquires of each client connection, to drop them when it closes.
    var parkedByPeer: [PeerConnection: Set<UInt64>] = [:]
    private var nextWaiterID: UInt64 = 0
    /// What the table asked for during this turn.
    var effects: [LockEffect] = []
    /// This turn's replies, sent after its commit; `durable` ones fail if it failed.
    var outbox: [(durable: Bool, send: () -> Void, context: RequestContext)] = []
    /// The armed timer for the table's next deadline.
    var timer: (id: Int, deadline: Duration)?
    /// Set when the table may have a new next deadline.
    var scheduleStale = true
    /// The operations port, with `--http-listen`.
    public private(set) var operations: OperationsEndpoint?
    private let metrics = LockMetrics()

    public init(reactor: Reactor, options: LockOptions) throws {
        self.reactor = reactor
        logger = reactor.logger
        origin = reactor.now
        limits = options.limits
        forgetAfter = options.forgetAfter
        security = try options.security.map { try ServerSecurity(reactor: reactor, settings: $0) }
        rpc = try RPCServer(reactor: reactor, endpoint: options.listen, watchPeers: true, security: security)
        let address = Endpoint.address(of: rpc.endpoint)
        events = try EventPublisher(reactor: reactor, endpoint: options.publish, source: address, security: security)
        control = try ReplicaControl(reactor: reactor, rpc: rpc, service: "lock", settings: options.replication,
                                     exempt: [LockMethods.health.path, LockMethods.echo.path])
        table = LockTable(limits: options.limits, forgetAfter: options.forgetAfter)
        if !control.isReplicated {
            let store = try LockStore(directory: options.dataDirectory)
            try restore(from: store)
            self.store = store
        }
        Diagnostics.register(on: rpc, health: LockMethods.health, echo: LockMethods.echo,
                             service: "lock", address: address) { [unowned self] in
            let counts = table.counts
            return ["locks_held": "\(counts.held)", "waiters": "\(counts.waiters)", "locks_known": "\(table.knownNames)",
                    "commits": "\(store?.commits ?? 0)"].merging(control.details) { _, role in role }
        }
        control.onElected = { [unowned self] term in takeOver(term) }
        control.onDeposed = { [unowned self] reason in stepDown(reason, error: control.notLeaderError) }
        registerLeases()
        registerQueries()
        operations = try options.operations.map { settings in try OperationsEndpoint(reactor: reactor, settings: settings) { nil } }
        operations?.onScrape { [unowned self] in
            let counts = table.counts
            metrics.record(held: counts.held, waiters: counts.waiters)
        }
        rpc.onPeerGone { [unowned self] peer in dropWaiters(of: peer) }
        reactor.onTurnEnd { [unowned self] in endTurn() }
        logger.info("lock.listening", metadata: ["rpc.endpoint": "\(rpc.endpoint)", "events.endpoint": "\(events.endpoint)",
                                                 "lock.data": "\(options.dataDirectory.path)",
                                                 "lock.forget_after": "\(options.forgetAfter)"])
    }

    deinit {
        for context in parked.values {
            rpc.fail(context, .unavailable("the lock service is stopping; the wait was dropped"))
        }
    }

    /// Starts the operations port's timer; the lease deadlines arm themselves
    /// at the end of each turn. `service` calls it.
    public func start() {
        operations?.start()
        control.start()
    }

    /// The lock service as a lifecycle `Service`, for the executable and tests.
    public static func service(options: LockOptions, logger: Logger) -> ReactorService {
        ReactorService(name: "lock", logger: logger) { reactor in
            let server = try LockServer(reactor: reactor, options: options)
            server.start()
            return server
        }
    }

    // MARK: Handlers

    private func registerLeases() {
        rpc.register(LockMethods.acquire) { [unowned self] context, request in
            let now = now
            nextWaiterID += 1
            let waiter = nextWaiterID
            // Answer before the caller gives up: keep a margin before its deadline.
            let waitCap = context.deadline.map { deadline -> Duration in
                let remaining = deadline - reactor.now
                return now.monotonic + remaining - min(.milliseconds(100), remaining / 10)
            }
            do throws(LockError) {
                let result = try table.acquire(name: request.name, owner: request.owner, ttl: Self.duration(millis: request.ttlMillis),
                                               wait: Self.duration(millis: request.waitMillis), waitCap: waitCap,
                                               attempt: request.attempt, session: Self.session(context), waiter: waiter,
                                               now: now, effects: &effects)
                switch result {
                case .granted(let lease):
                    respond(context, durable: true, grant: lease) { .success(WireLockAcquireReply.with { $0.grant = lease.wire }) }
                case .queued(let position):
                    park(context, as: waiter)
                    logger.debug("lock.queued", metadata: ["lock.name": "\(request.name)", "lock.owner": "\(request.owner)",
                                                           "lock.position": "\(position)"])
                }
            } catch {
                respond(context) { () -> Result<WireLockAcquireReply, RPCError> in .failure(Self.rpcError(error)) }
            }
            scheduleStale = true
            return .parked
        }
        rpc.register(LockMethods.renew) { [unowned self] context, request in
            do throws(LockError) {
                let ttl = request.ttlMillis == 0 ? nil : Self.duration(millis: request.ttlMillis)
                let lease = try table.renew(name: request.name, owner: request.owner, token: request.token, ttl: ttl,
                                            session: Self.session(context), privileged: Self.isAdmin(context),
                                            now: now, effects: &effects)
                respond(context, durable: true) { .success(WireLockRenewReply.with { $0.grant = lease.wire }) }
            } catch {
                respond(context) { () -> Result<WireLockRenewReply, RPCError> in .failure(Self.rpcError(error)) }
            }
            scheduleStale = true
            return .parked
        }
        rpc.register(LockMethods.release) { [unowned self] context, request in
            do throws(LockError) {
                try table.release(name: request.name, owner: request.owner, token: request.token, session: Self.session(context),
                                  privileged: Self.isAdmin(context), now: now, effects: &effects)
                respond(context, durable: true) { .success(WireLockReleaseReply()) }
            } catch {
                respond(context) { () -> Result<WireLockReleaseReply, RPCError> in .failure(Self.rpcError(error)) }
            }
            scheduleStale = true
            return .parked
        }
        rpc.register(LockMethods.cancel) { [unowned self] context, request in
            do throws(LockError) {
                let outcome = try table.cancel(name: request.name, owner: request.owner, attempt: request.attempt,
                                               now: now, effects: &effects)
                var reply = WireLockCancelReply()
                switch outcome {
                case .dequeued(let waiter):
                    reply.dequeued = true
                    if let waiting = unpark(waiter) {
                        respond(waiting) { () -> Result<WireLockAcquireReply, RPCError> in
                            .failure(.cancelled("the acquire of \(request.name) was cancelled by its client"))
                        }
                    }
                    logger.debug("lock.cancelled", metadata: ["lock.name": "\(request.name)", "lock.owner": "\(request.owner)"])
                case .released(let token):
                    reply.releasedToken = token
                    logger.info("lock.cancelled.released", metadata: ["lock.name": "\(request.name)", "lock.owner": "\(request.owner)",
                                                                      "lock.token": "\(token)"])
                case .nothing:
                    break
                }
                respond(context, durable: outcome != .nothing) { .success(reply) }
            } catch {
                respond(context) { () -> Result<WireLockCancelReply, RPCError> in .failure(Self.rpcError(error)) }
            }
            scheduleStale = true
            return .parked
        }
    }

    private func registerQueries() {
        rpc.register(LockMethods.status) { [unowned self] context, request in
            do throws(LockError) {
                try table.validate(name: request.name)
            } catch {
                return .failure(Self.rpcError(error))
            }
            table.settle(name: request.name, now: now, effects: &effects)
            scheduleStale = true
            // Built after the turn's commit, so it shows what is durable.
            respond(context) { [unowned self] in .success(WireLockStatusReply.with { $0.lock = table.info(request.name) }) }
            return .parked
        }
        rpc.register(LockMethods.list) { [unowned self] context, _ in
            table.tick(now: now, effects: &effects)
            scheduleStale = true
            respond(context) { [unowned self] in .success(WireLockListReply.with { $0.locks = table.activeNames.map(table.info) }) }
            return .parked
        }
        rpc.register(LockMethods.snapshot) { [unowned self] context, _ in
            table.tick(now: now, effects: &effects)
            scheduleStale = true
            // After the turn's events are out, so the state and the sequence
            // numbers agree (the clone pattern).
            respond(context) { [unowned self] in
                .success(WireLockSnapshotReply.with {
                    $0.locks = table.activeNames.map(table.info)
                    $0.incarnation = events.incarnation
                    $0.lastSeq = events.lastSequences.filter { $0.key == "lock" }
                })
            }
            return .parked
        }
        // For `ringctl backup`: every name the table remembers and the token counter.
        rpc.register(LockMethods.exportState, role: .admin) { [unowned self] context, _ in
            table.tick(now: now, effects: &effects)
            scheduleStale = true
            respond(context) { [unowned self] in
                .success(WireLockExportReply.with {
                    $0.locks = table.knownNamesSorted.map(table.info)
                    $0.lastToken = table.lastToken
                })
            }
            return .parked
        }
        // For `ringctl restore`: the counter rises to the backup's, durably before the answer.
        rpc.register(LockMethods.importTokens, role: .admin) { [unowned self] context, request in
            if table.importTokens(atLeast: request.lastToken) {
                logger.notice("lock.tokens.imported", metadata: ["lock.last_token": "\(table.lastToken)", "rpc.caller": "\(context.caller)"])
            }
            respond(context, durable: true) { [unowned self] in .success(WireLockImportTokensReply.with { $0.lastToken = table.lastToken }) }
            return .parked
        }
    }

    /// Queues a reply for the end of the turn. A `grant` whose reply finds the
    /// client gone is taken back.
    private func respond<Response: SwiftProtobuf.Message>(_ context: RequestContext, durable: Bool = false, grant: LockLease? = nil,
                                                          _ make: @escaping () -> Result<Response, RPCError>) {
        outbox.append((durable, { [unowned self] in
            if rpc.reply(to: context, make()) == .peerGone, let grant { revoke(grant) }
        }, context))
    }

    // MARK: The end of a turn: commit, publish, answer, re-arm

    private func endTurn() {
        // Answering may change the table again (a grant that reached nobody
        // passes the lock on); repeat until nothing is left. Each round takes
        // a waiter off a queue, so this ends.
        while !effects.isEmpty || !outbox.isEmpty || table.hasChanges {
            let failure = commit()
            if let write = failure?.write {
                // This replica's table may no longer be etcd's: it resigns,
                // publishes nothing of this turn and refuses what waits.
                let error = write.kind == .outcomeUnknown
                    ? RPCError.unavailable("the change reached etcd but its outcome is unknown (it may have been applied): \(write)")
                    : control.notLeaderError
                stepDown("a write to etcd failed: \(write)", error: error)
                control.resign("a write to etcd failed: \(write)")
                return
            }
            let effects = self.effects
            let outbox = self.outbox
            self.effects.removeAll(keepingCapacity: true)
            self.outbox.removeAll(keepingCapacity: true)
            for effect in effects { carry(effect, failure: failure) }
            for reply in outbox {
                if reply.durable, let failure {
                    rpc.fail(reply.context, .internalError("cannot persist the lock state: \(failure)"))
                } else {
                    reply.send()
                }
            }
            // A failed commit is retried with the next turn's, not in a loop here.
            if failure != nil { break }
        }
        if scheduleStale { rearm() }
    }

    /// Writes the changed locks; returns the failure, if any.
    private func commit() -> LockStoreError? {
        guard table.hasChanges, let store else { return nil }
        let changes = table.takeChanges()
        do {
            try store.save(changes)
            return nil
        } catch {
            table.markChanged(changes)
            logger.error("lock.persist.failed", metadata: ["lock.error": "\(error)", "lock.records": "\(changes.records.count)"])
            return error
        }
    }

    private func carry(_ effect: LockEffect, failure: LockStoreError?) {
        switch effect {
        case .granted(let waiter, let lease):
            guard let context = unpark(waiter) else {
                // A waiter restored from etcd whose client has not come back
                // yet: the grant waits for its retry (or its lease runs out).
                if waiter >= LockTable.restoredWaiterBase {
                    logger.info("lock.granted.detached", metadata: ["lock.name": "\(lease.name)", "lock.owner": "\(lease.owner)",
                                                                    "lock.token": "\(lease.token)"])
                    return
                }
                // Its connection closed in the same turn, after the table had
                // granted it (the close was learned after the grant's request
                // was read): nobody can receive this grant.
                revoke(lease)
                return
            }
            if let failure {
                rpc.fail(context, .internalError("granted token \(lease.token) but cannot persist it: \(failure)"))
            } else if rpc.reply(to: context, .success(WireLockAcquireReply.with { $0.grant = lease.wire })) == .peerGone {
                revoke(lease)
            }
        case .waitExpired(let waiter, let name, let holder):
            guard let context = unpark(waiter) else { return }
            let held = holder.map { " (held by \($0))" } ?? ""
            rpc.fail(context, .deadlineExceeded("the wait for \(name) ran out\(held)"))
        case .superseded(let waiter):
            if let context = unpark(waiter) {
                rpc.fail(context, RPCError(.aborted, "superseded: the same acquire was sent again and took this one's place"))
            }
        case .event(let event):
            publish(event)
        }
    }

    private func publish(_ event: LockEvent) {
        events.publish(topic: "lock", type: event.kind.rawValue, details: .lock(event.details))
        metrics.published(event)
        let metadata: Logger.Metadata = ["lock.name": "\(event.name)", "lock.owner": "\(event.owner)", "lock.token": "\(event.token)"]
        switch event.kind {
        case .acquired, .released:
            logger.debug("lock.\(event.kind.rawValue)", metadata: metadata)
        case .expired:
            logger.info("lock.expired", metadata: metadata)
        case .lost:
            // The holder may subscribe to its own topic to learn it at once.
            events.publish(topic: Self.ownerTopic(event.owner), type: event.kind.rawValue, details: .lock(event.details))
        }
    }

    /// The topic on which an owner hears that it lost a lock.
    public static func ownerTopic(_ owner: String) -> String { "owner/" + owner }

    /// Arms the timer for the table's next deadline (lease end, wait end, forget time).
    private func rearm() {
        scheduleStale = false
        let next = table.nextDeadline
        if next == timer?.deadline { return }
        if let timer { reactor.cancelTimer(timer.id) }
        timer = nil
        guard let next else { return }
        let id = reactor.after(max(.zero, next - now.monotonic)) { [unowned self] in
            timer = nil
            table.tick(now: now, effects: &effects)
            scheduleStale = true
        }
        timer = (id, next)
    }

    // MARK: Helpers

    var now: ServiceTime {
        ServiceTime(monotonic: reactor.now - origin, wallMicros: WallClock.micros)
    }
}
