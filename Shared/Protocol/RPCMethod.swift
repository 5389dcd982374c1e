import SwiftProtobuf

/// A typed RPC method: its full path and its request and response messages.
///
/// The constants are generated from the `service` definitions of the .proto
/// files (see `Generated/Methods.swift`); `idempotent` comes from the method's
/// `idempotency_level` and decides whether a client may retry it.
public struct RPCMethod<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>: Sendable {
    /// The full method name sent in the request header, "/ringstore.v1.Storage/Health".
    public let path: String
    /// Whether repeating the call is harmless, so clients may retry it.
    public let idempotent: Bool

    public init(path: String, idempotent: Bool) {
        self.path = path
        self.idempotent = idempotent
    }
}

/// The protocol version this build speaks, sent in every request header.
public let wireProtocolVersion: UInt32 = 1
