import CZeroMQ
import Glibc

/// A CurveZMQ key: 32 bytes, written as 40 characters of Z85 (ZeroMQ's
/// printable encoding), the form key files and allowlists hold.
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    /// The 40-character Z85 text.
    public let z85: String

    /// The key `text` spells (surrounding whitespace ignored); nil unless it
    /// is 40 characters of valid Z85.
    public init?(_ text: some StringProtocol) {
        let trimmed = String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }.reversed())
        guard trimmed.utf8.count == 40, Self.decode(trimmed) != nil else { return nil }
        z85 = trimmed
    }

    /// The 32 key bytes, as libzmq's ZAP requests carry them.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        var text = [CChar](repeating: 0, count: 41)
        guard bytes.withUnsafeBufferPointer({ zmq_z85_encode(&text, $0.baseAddress, 32) }) != nil else { return nil }
        z85 = Self.string(text)
    }

    /// The 32 key bytes.
    public var bytes: [UInt8] { Self.decode(z85) ?? [] }

    /// The key printed: its Z85 text (a public key is meant to be shown; keep
    /// secret keys out of logs).
    public var description: String { z85 }

    /// The text of a NUL-terminated C buffer.
    static func string(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func decode(_ text: String) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: 32)
        let decoded = text.withCString { zmq_z85_decode(&bytes, $0) }
        return decoded == nil ? nil : bytes
    }
}

/// A CurveZMQ keypair: the public key peers put in their allowlists, and the
/// secret key only its owner reads.
public struct CurveKeyPair: Sendable, Equatable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    /// A pair from its two keys; nil when the public key is not the secret
    /// key's (a mismatched pair would fail every handshake).
    public init?(publicKey: CurveKey, secretKey: CurveKey) {
        var derived = [CChar](repeating: 0, count: 41)
        guard secretKey.z85.withCString({ zmq_curve_public(&derived, $0) }) == 0,
              CurveKey.string(derived) == publicKey.z85
        else { return nil }
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A new random pair (libzmq with libsodium).
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        _ = try zmqCall("zmq_curve_keypair") { zmq_curve_keypair(&publicText, &secretText) }
        guard let publicKey = CurveKey(CurveKey.string(publicText)), let secretKey = CurveKey(CurveKey.string(secretText)),
              let pair = CurveKeyPair(publicKey: publicKey, secretKey: secretKey)
        else { throw ZMQError(code: EINVAL, operation: "zmq_curve_keypair") }
        return pair
    }

    /// Whether this libzmq was built with CURVE (it needs libsodium).
    public static var isAvailable: Bool { zmq_has("curve") != 0 }
}

extension ZMQSocket {
    /// Makes this socket a CURVE server with `keys`: every peer must
    /// handshake with CURVE, and the context's ZAP handler (if any) decides
    /// who may connect. Set before `bind`.
    public func setCurveServer(_ keys: CurveKeyPair) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVER, 1, "ZMQ_CURVE_SERVER")
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: keys.secretKey.bytes, "ZMQ_CURVE_SECRETKEY")
        try setOption(ZMQ_CURVE_PUBLICKEY, bytes: keys.publicKey.bytes, "ZMQ_CURVE_PUBLICKEY")
    }

    /// Makes this socket a CURVE client with `keys`, talking only to the
    /// server whose public key is `server`. Set before `connect`.
    public func setCurveClient(_ keys: CurveKeyPair, server: CurveKey) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVERKEY, bytes: server.bytes, "ZMQ_CURVE_SERVERKEY")
        try setOption(ZMQ_CURVE_PUBLICKEY, bytes: keys.publicKey.bytes, "ZMQ_CURVE_PUBLICKEY")
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: keys.secretKey.bytes, "ZMQ_CURVE_SECRETKEY")
    }

    /// The ZAP domain this socket's handshakes are authenticated in; the ZAP
    /// handler sees it in every request.
    public func setZAPDomain(_ domain: String) throws(ZMQError) {
        try setOption(ZMQ_ZAP_DOMAIN, bytes: Array(domain.utf8), "ZMQ_ZAP_DOMAIN")
    }
}
