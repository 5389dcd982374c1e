import CZeroMQ

/// The messaging pattern of a socket.
public struct ZMQSocketType: Equatable, Sendable, CustomStringConvertible {
    let rawValue: Int32
    let name: String

    public static let req = ZMQSocketType(rawValue: ZMQ_REQ, name: "REQ")
    public static let rep = ZMQSocketType(rawValue: ZMQ_REP, name: "REP")
    public static let dealer = ZMQSocketType(rawValue: ZMQ_DEALER, name: "DEALER")
    public static let router = ZMQSocketType(rawValue: ZMQ_ROUTER, name: "ROUTER")
    public static let pub = ZMQSocketType(rawValue: ZMQ_PUB, name: "PUB")
    public static let sub = ZMQSocketType(rawValue: ZMQ_SUB, name: "SUB")
    public static let push = ZMQSocketType(rawValue: ZMQ_PUSH, name: "PUSH")
    public static let pull = ZMQSocketType(rawValue: ZMQ_PULL, name: "PULL")
    public static let pair = ZMQSocketType(rawValue: ZMQ_PAIR, name: "PAIR")

    public var description: String { name }
}

/// One frame of a multipart message.
public typealias ZMQFrame = [UInt8]

/// A ZeroMQ socket.
///
/// A socket is not thread-safe: it has exactly one owning thread, so this class
/// is deliberately not `Sendable`. It closes itself in `deinit` (after applying
/// its linger) unless `close()` was called first; the context outlives it.
public final class ZMQSocket {
    /// The context this socket belongs to; kept alive until the socket closes.
    public let context: ZMQContext
    /// The pattern this socket was created with.
    public let type: ZMQSocketType
    private var handle: UnsafeMutableRawPointer?
    /// A reusable message with a stable address, for receiving.
    private let scratch: UnsafeMutablePointer<zmq_msg_t>

    /// Creates a socket of `type` in `context`. The linger defaults to 0 so that a
    /// closing process never hangs on undeliverable messages; set `linger` to keep
    /// trying for a while.
    public init(context: ZMQContext, type: ZMQSocketType) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, type.rawValue) else {
            throw ZMQError.last("zmq_socket(\(type))")
        }
        self.context = context
        self.type = type
        self.handle = handle
        self.scratch = .allocate(capacity: 1)
        try setOption(ZMQ_LINGER, Int32(0), "ZMQ_LINGER")
    }

    deinit {
        close()
        scratch.deallocate()
    }

    /// Whether `close()` has been called.
    public var isClosed: Bool { handle == nil }

    /// Closes the socket; pending outgoing messages are kept for the linger period.
    /// Calling it again does nothing.
    public func close() {
        guard let handle else { return }
        self.handle = nil
        _ = zmq_close(handle)
    }

    /// The raw handle for the poller; traps if the socket is closed (a programmer error).
    var rawHandle: UnsafeMutableRawPointer {
        guard let handle else { preconditionFailure("ZMQSocket used after close()") }
        return handle
    }

    // MARK: Endpoints

    /// Binds to `endpoint`, e.g. `tcp://127.0.0.1:7400` or `tcp://127.0.0.1:*` for a
    /// free port; returns the endpoint actually bound.
    @discardableResult
    public func bind(_ endpoint: String) throws(ZMQError) -> String {
        let socket = rawHandle
        try zmqCall("zmq_bind(\(endpoint))") { zmq_bind(socket, endpoint) }
        return try lastEndpoint
    }

    /// Connects to `endpoint`; libzmq connects and reconnects in the background.
    public func connect(_ endpoint: String) throws(ZMQError) {
        let socket = rawHandle
        try zmqCall("zmq_connect(\(endpoint))") { zmq_connect(socket, endpoint) }
    }

    /// Disconnects from an endpoint given to `connect`.
    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let socket = rawHandle
        try zmqCall("zmq_disconnect(\(endpoint))") { zmq_disconnect(socket, endpoint) }
    }

    /// Stops listening on an endpoint given to `bind`.
    public func unbind(_ endpoint: String) throws(ZMQError) {
        let socket = rawHandle
        try zmqCall("zmq_unbind(\(endpoint))") { zmq_unbind(socket, endpoint) }
    }

    // MARK: Sending

    /// Sends a multipart message. Returns `false` instead of blocking when
    /// `dontWait` is set and the message cannot be queued (no peer, or the
    /// high-water mark is reached); the frames after the first never block.
    @discardableResult
    public func send(_ frames: [ZMQFrame], dontWait: Bool = false) throws(ZMQError) -> Bool {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        let socket = rawHandle
        let last = frames.count - 1
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = index < last ? ZMQ_SNDMORE : 0
            if index == 0 && dontWait { flags |= ZMQ_DONTWAIT }
            do {
                try zmqCall("zmq_send") {
                    frame.withUnsafeBytes { buffer in zmq_send(socket, buffer.baseAddress, buffer.count, flags) }
                }
            } catch let error where error == .wouldBlock && index == 0 {
                return false
            }
        }
        return true
    }

    /// Sends a single-frame message.
    @discardableResult
    public func send(_ frame: ZMQFrame, dontWait: Bool = false) throws(ZMQError) -> Bool {
        try send([frame], dontWait: dontWait)
    }

    // MARK: Receiving

    /// Receives one multipart message. With `dontWait`, returns `nil` when none is
    /// waiting; otherwise blocks (up to `receiveTimeout`, then returns `nil`).
    public func receive(dontWait: Bool = false) throws(ZMQError) -> [ZMQFrame]? {
        try receiveMessage(dontWait: dontWait, withSource: false, withUser: false)?.frames
    }

    /// Receives one multipart message like `receive`, with the descriptor of
    /// the connection it arrived on: libzmq's `ZMQ_SRCFD` message property
    /// (deprecated in favour of the draft ZMQ_ROUTER_NOTIFY, but present and
    /// the only way without draft APIs), -1 when it has none (inproc). A
    /// `ZMQSocketMonitor` reports the same descriptors as connections come and go.
    public func receiveWithSource(dontWait: Bool = false) throws(ZMQError) -> (frames: [ZMQFrame], sourceDescriptor: Int32)? {
        try receiveMessage(dontWait: dontWait, withSource: true, withUser: false).map { ($0.frames, $0.sourceDescriptor) }
    }

    /// Receives one multipart message like `receiveWithSource`, with the
    /// authenticated peer: the `User-Id` the context's ZAP handler gave the
    /// connection (nil without authentication).
    public func receiveWithPeer(dontWait: Bool = false) throws(ZMQError) -> (frames: [ZMQFrame], sourceDescriptor: Int32, userID: String?)? {
        try receiveMessage(dontWait: dontWait, withSource: true, withUser: true)
    }

    private func receiveMessage(dontWait: Bool, withSource: Bool, withUser: Bool) throws(ZMQError)
        -> (frames: [ZMQFrame], sourceDescriptor: Int32, userID: String?)? {
        let socket = rawHandle
        var frames: [ZMQFrame] = []
        var source: Int32 = -1
        var userID: String?
        var more = true
        while more {
            zmq_msg_init(scratch)
            defer { zmq_msg_close(scratch) }
            let flags: Int32 = frames.isEmpty && dontWait ? ZMQ_DONTWAIT : 0
            let size: Int32
            do {
                let message = scratch
                size = try zmqCall("zmq_msg_recv") { zmq_msg_recv(message, socket, flags) }
            } catch let error where error == .wouldBlock && frames.isEmpty {
                return nil
            }
            more = zmq_msg_more(scratch) != 0
            if withSource && !more {
                // From the last frame: a ROUTER makes up the routing-id frame
                // itself, and when the message was prefetched (by a poll) that
                // frame carries no descriptor; the peer's own frames always do.
                // Not through `zmqCall`: -1 here means "no descriptor", not a
                // failure, and leaves errno alone.
                source = zmq_msg_get(scratch, ZMQ_SRCFD)
            }
            if withUser && !more, let property = zmq_msg_gets(scratch, "User-Id") {
                let text = String(cString: property)
                userID = text.isEmpty ? nil : text
            }
            let data = zmq_msg_data(scratch)
            let count = Int(size)
            if count == 0 || data == nil {
                frames.append([])
            } else {
                frames.append(ZMQFrame(UnsafeRawBufferPointer(start: data, count: count)))
            }
        }
        return (frames, source, userID)
    }

    // MARK: Options

    func setOption(_ option: Int32, _ value: Int32, _ name: String) throws(ZMQError) {
        let socket = rawHandle
        var value = value
        try zmqCall("zmq_setsockopt(\(name))") {
            zmq_setsockopt(socket, option, &value, MemoryLayout<Int32>.size)
        }
    }

    func setOption(_ option: Int32, bytes: [UInt8], _ name: String) throws(ZMQError) {
        let socket = rawHandle
        try zmqCall("zmq_setsockopt(\(name))") {
            bytes.withUnsafeBytes { buffer in zmq_setsockopt(socket, option, buffer.baseAddress, buffer.count) }
        }
    }

    func int32Option(_ option: Int32, _ name: String) throws(ZMQError) -> Int32 {
        let socket = rawHandle
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        try zmqCall("zmq_getsockopt(\(name))") { zmq_getsockopt(socket, option, &value, &size) }
        return value
    }

    func bytesOption(_ option: Int32, capacity: Int, _ name: String) throws(ZMQError) -> [UInt8] {
        let socket = rawHandle
        var buffer = [UInt8](repeating: 0, count: capacity)
        var size = capacity
        try zmqCall("zmq_getsockopt(\(name))") { zmq_getsockopt(socket, option, &buffer, &size) }
        return Array(buffer.prefix(size))
    }
}
