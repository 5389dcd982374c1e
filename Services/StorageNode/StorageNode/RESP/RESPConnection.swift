import RESP

/// One RESP client: its parser, its session (protocol version, name,
/// authentication) and its replies, which go out in the order the commands
/// came in even when later ones finish first (a pipelined GET answered by a
/// local replica before an earlier SET's quorum).
final class RESPConnection {
    let id: Int64
    let fd: Int32
    /// `host:port` of the client.
    let peer: String
    var parser: RESPParser
    /// 2 or 3 (`HELLO 3`).
    var protocolVersion = 2
    /// CLIENT SETNAME.
    var name = ""
    /// Who AUTH said this is (nil before AUTH, or without passwords).
    var authenticated: RESPPasswords.Entry?
    /// QUIT or a protocol error: close once the replies so far are sent.
    var closing = false
    /// The client closed its side: answer what it sent, then close.
    var peerClosed = false
    /// Closed by the listener; late replies are dropped.
    var closed = false
    /// What the listener watches it for.
    var interest = (readable: false, writable: false)
    /// Called when a reply is ready to go out.
    var onReply: (RESPConnection) -> Void = { _ in }

    /// Replies not yet written into `output`, in command order; nil while
    /// the command runs. `first` is the slot number of `pending[0]`.
    private var pending: [[UInt8]?] = []
    private var first = 0
    private var output: [UInt8] = []
    private var outputStart = 0

    init(id: Int64, fd: Int32, parser: RESPParser, peer: String) {
        self.id = id
        self.fd = fd
        self.parser = parser
        self.peer = peer
    }

    /// Commands read whose replies have not reached the output buffer.
    var inFlight: Int { pending.count }
    /// Reply bytes waiting for the socket.
    var unsent: Int { output.count - outputStart }

    /// The place of the next command's reply; fill it with `complete`.
    func reserve() -> Int {
        pending.append(nil)
        return first + pending.count - 1
    }

    /// The reply of the command that reserved `slot`.
    func complete(_ slot: Int, _ reply: [UInt8]) {
        guard !closed, slot >= first, slot - first < pending.count else { return }
        pending[slot - first] = reply
        onReply(self)
    }

    /// Reserves and completes at once, for a reply known now.
    func reply(_ write: (inout RESPWriter) -> Void) {
        let slot = reserve()
        complete(slot, encode(write))
    }

    /// A reply in this connection's protocol version.
    func encode(_ write: (inout RESPWriter) -> Void) -> [UInt8] {
        var writer = RESPWriter(version: protocolVersion)
        write(&writer)
        return writer.take()
    }

    /// A running average of this connection's reply sizes (starting at
    /// 512 KB, so 8 at first, until replies are seen), so that a client
    /// reading large values gets fewer commands in
    /// flight at once (see `RESPListener.mayRead`).
    private(set) var typicalReplyBytes = 512 << 10

    /// Moves the replies that are ready, in order, into the output buffer.
    func collectReplies() {
        var ready = 0
        while ready < pending.count, let reply = pending[ready] {
            output.append(contentsOf: reply)
            typicalReplyBytes = (typicalReplyBytes * 7 + reply.count) / 8
            ready += 1
        }
        guard ready > 0 else { return }
        pending.removeFirst(ready)
        first += ready
    }

    func withUnsent<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        output.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[outputStart...])) }
    }

    /// `count` bytes of the output reached the socket.
    func sent(_ count: Int) {
        outputStart += count
        if outputStart == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 1 << 20)
            outputStart = 0
        } else if outputStart > 1 << 20 {
            output.removeSubrange(0..<outputStart)
            outputStart = 0
        }
    }
}
