#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A watch on a key or a prefix: every put and delete, in revision order,
/// from a starting revision on, delivered on `events`.
///
/// A thread of its own holds one streamed `POST /v3/watch` open to one
/// member. When the stream breaks (the member died, was restarted, or lost
/// its raft leader), the watch connects again, to the next member in turn,
/// asking for the events after the last revision it delivered: none is
/// lost and none is delivered twice. It retries until cancelled, waiting
/// up to a second between rounds of failed attempts.
///
/// `events` ends with an error only when the watch cannot go on:
/// `EtcdError.compacted` (etcd no longer has the revisions it needs; read
/// the current state and start a new watch from its revision),
/// `EtcdError.watchCanceled`, `EtcdError.server` or
/// `EtcdError.malformedResponse`. It ends without error after `cancel()`.
///
/// Keep the watch while you use it: dropping the last reference cancels it.
/// Cancelling the task that iterates `events` cancels it too. Events wait
/// in an unbounded buffer until they are consumed.
public final class EtcdWatch: Sendable {
    /// Every change, in increasing revision order (the changes of one
    /// transaction share a revision and arrive together, in its order).
    public let events: AsyncThrowingStream<WatchEvent, any Error>
    private let core: WatchCore

    init(client: EtcdClient, key: [UInt8], rangeEnd: [UInt8]?, fromRevision: Int64) {
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
        let core = WatchCore(client: client, key: key, rangeEnd: rangeEnd, fromRevision: fromRevision, continuation: continuation)
        continuation.onTermination = { _ in core.cancel() }
        events = stream
        self.core = core
        let thread = Thread { core.run() }
        thread.name = "etcd-watch"
        thread.start()
    }

    deinit { core.cancel() }

    /// Stops the watch: the stream to etcd is closed and `events` ends.
    public func cancel() { core.cancel() }

    /// The revision the next event will have at least: one past the last
    /// event delivered (or past the revision a progress report covered).
    /// A new watch from here misses nothing. 0 before the first stream is up
    /// when the watch started "from now".
    public var nextRevision: Int64 { core.state.withLock { $0.nextRevision } }

    /// Whether a stream is established now.
    public var isConnected: Bool { core.state.withLock { $0.connected } }

    /// How many times a stream was established again after the first one.
    public var reconnects: Int { core.state.withLock { $0.reconnects } }

    /// The member the current (or last) stream is to.
    public var endpoint: String? { core.state.withLock { $0.endpoint } }

    /// Why the last stream ended or the last attempt failed (nil if none did).
    public var lastInterruption: String? { core.state.withLock { $0.lastInterruption } }
}

/// The watch's thread and the state it shares with the handle.
final class WatchCore: Sendable {
    struct State {
        var cancelled = false
        /// The open socket, for `cancel()` to shut down.
        var socket: Int32?
        var nextRevision: Int64
        var connected = false
        var established = 0
        var reconnects = 0
        var endpoint: String?
        var lastInterruption: String?
    }

    let state: Mutex<State>
    private let client: EtcdClient
    private let key: [UInt8]
    private let rangeEnd: [UInt8]?
    private let continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation

    init(client: EtcdClient, key: [UInt8], rangeEnd: [UInt8]?, fromRevision: Int64,
         continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation) {
        self.client = client
        self.key = key
        self.rangeEnd = rangeEnd
        self.continuation = continuation
        state = Mutex(State(nextRevision: max(0, fromRevision)))
    }

    var isCancelled: Bool { state.withLock { $0.cancelled } }

    func cancel() {
        state.withLock { state in
            state.cancelled = true
            if let socket = state.socket { _ = shutdown(socket, Int32(SHUT_RDWR)) }
        }
    }

    /// How one stream ended.
    enum StreamEnd {
        case cancelled
        /// Try again (elsewhere); `established` if it had been up.
        case broken(reason: String, established: Bool)
        /// The watch cannot go on.
        case fatal(EtcdError)
    }

    func run() {
        let members = client.members
        var index = client.preferredIndex
        var failedInARow = 0
        var backoff = Duration.milliseconds(50)
        while !isCancelled {
            let end = streamOnce(members[index])
            state.withLock { $0.connected = false }
            switch end {
            case .cancelled:
                continuation.finish()
                return
            case let .fatal(error):
                cancel()
                continuation.finish(throwing: error)
                return
            case let .broken(reason, established):
                state.withLock { $0.lastInterruption = "\(members[index]): \(reason)" }
                if established {
                    failedInARow = 0
                    backoff = .milliseconds(50)
                } else {
                    failedInARow += 1
                }
                // A stream that was up is tried again on the same member
                // first when there is only one; otherwise on the next one.
                if members.count > 1 || !established { index = (index + 1) % members.count }
                if failedInARow >= members.count {
                    failedInARow = 0
                    pause(backoff)
                    backoff = min(backoff * 2, .seconds(1))
                }
            }
        }
        continuation.finish()
    }

    /// Sleeps `duration` in short steps, returning early when cancelled.
    private func pause(_ duration: Duration) {
        let until = ContinuousClock.now + duration
        while !isCancelled && ContinuousClock.now < until {
            usleep(10_000)
        }
    }

    /// One streamed watch request to `endpoint`, read until it ends.
    private func streamOnce(_ endpoint: Endpoint) -> StreamEnd {
        let deadline = ContinuousClock.now + client.timeout
        let connection: HTTPConnection
        do {
            connection = try HTTPConnection.connect(to: endpoint, deadline: deadline)
        } catch {
            return .broken(reason: error.reason, established: false)
        }
        defer {
            state.withLock { $0.socket = nil }
            connection.close()
        }
        let startRevision: Int64? = state.withLock { state in
            guard !state.cancelled else { return nil }
            state.socket = connection.descriptor
            state.endpoint = endpoint.description
            return state.nextRevision
        }
        guard let startRevision else { return .cancelled }
        connection.enableKeepalive()

        var create: [String: Any] = ["key": base64(key), "progress_notify": true]
        if let rangeEnd { create["range_end"] = base64(rangeEnd) }
        if startRevision > 0 { create["start_revision"] = String(startRevision) }
        let body: [UInt8]
        do {
            body = [UInt8](try JSONSerialization.data(withJSONObject: ["create_request": create]))
        } catch {
            preconditionFailure("watch request is not JSON-serializable: \(error)")
        }

        var established = false
        do throws(TransportFailure) {
            try connection.sendPost(path: "/v3/watch", body: body, connectionClose: true, deadline: deadline)
            let head = try connection.readHead(deadline)
            guard head.status == 200 else {
                let answer = try connection.readBody(head, deadline)
                let error = EtcdClient.serverError(endpoint: endpoint, status: head.status, body: answer)
                if case let .server(_, _, code, message) = error, code == EtcdError.Code.unavailable {
                    return .broken(reason: message, established: false)
                }
                return .fatal(error)
            }
            guard head.isChunked else {
                let answer = (try? connection.readBody(head, deadline)) ?? []
                return .fatal(.malformedResponse(endpoint: endpoint.description, path: "/v3/watch",
                                                 reason: "the answer is not a chunked stream", excerpt: excerpt(answer[...])))
            }
            var pending: [UInt8] = []
            while true {
                // No deadline: a watch on a quiet prefix may wait for hours.
                guard let chunk = try connection.readChunk(nil) else {
                    return isCancelled ? .cancelled : .broken(reason: "etcd ended the watch stream", established: established)
                }
                pending += chunk
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(pending[..<newline])
                    pending.removeSubrange(...newline)
                    if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }
                    if let end = handle(line, endpoint: endpoint, startRevision: startRevision, established: &established) {
                        return end
                    }
                }
            }
        } catch {
            return isCancelled ? .cancelled : .broken(reason: error.reason, established: established)
        }
    }

    /// One message of the stream; a value when the stream must end.
    private func handle(_ line: [UInt8], endpoint: Endpoint, startRevision: Int64, established: inout Bool) -> StreamEnd? {
        let message: WireStreamMessage<WireWatchResponse>
        do {
            message = try JSONDecoder().decode(WireStreamMessage<WireWatchResponse>.self, from: Data(line))
        } catch {
            return .fatal(.malformedResponse(endpoint: endpoint.description, path: "/v3/watch",
                                             reason: describeDecoding(error), excerpt: excerpt(line[...])))
        }
        if let error = message.error {
            // "etcdserver: no leader" (with the hasleader metadata the client sends): elsewhere.
            if error.grpcCode == EtcdError.Code.unavailable {
                return .broken(reason: error.message ?? "unavailable", established: established)
            }
            return .fatal(.server(endpoint: endpoint.description, httpStatus: error.httpCode ?? 200,
                                  code: error.grpcCode, message: error.message ?? ""))
        }
        guard let response = message.result else {
            return .fatal(.malformedResponse(endpoint: endpoint.description, path: "/v3/watch",
                                             reason: "a stream message with neither result nor error", excerpt: excerpt(line[...])))
        }
        let headerRevision = response.header?.revision?.value ?? 0
        if response.canceled ?? false {
            if let compact = response.compactRevision?.value, compact > 0 {
                return .fatal(.compacted(requestedRevision: startRevision, compactRevision: compact))
            }
            return .fatal(.watchCanceled(endpoint: endpoint.description, reason: response.cancelReason ?? "no reason given"))
        }
        if response.created ?? false {
            established = true
            state.withLock { state in
                state.connected = true
                state.established += 1
                if state.established > 1 { state.reconnects += 1 }
                // "From now": the watch covers the revisions after the one it was created at.
                if state.nextRevision == 0 { state.nextRevision = headerRevision + 1 }
            }
            return nil
        }
        let events = response.events ?? []
        if events.isEmpty {
            // A progress report: every event up to the header's revision was sent.
            if headerRevision > 0 { state.withLock { $0.nextRevision = max($0.nextRevision, headerRevision + 1) } }
            return nil
        }
        for wire in events {
            let kv = wire.kv?.keyValue ?? KeyValue(key: "", value: [], createRevision: 0, modRevision: 0, version: 0, lease: 0)
            let deleted = wire.type == "DELETE"
            let event = WatchEvent(kind: deleted ? .delete : .put, key: kv.key, value: deleted ? [] : kv.value,
                                   modRevision: kv.modRevision, createRevision: kv.createRevision,
                                   version: kv.version, lease: kv.lease)
            let deliver: Bool = state.withLock { state in
                if state.cancelled || event.modRevision < state.nextRevision { return false }
                return true
            }
            guard deliver else { continue }
            continuation.yield(event)
        }
        if let last = events.last?.kv?.modRevision?.value {
            state.withLock { $0.nextRevision = max($0.nextRevision, last + 1) }
        }
        return nil
    }
}
