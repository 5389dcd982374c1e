import Foundation

// The JSON etcd 3.4's gateway sends (grpc-gateway's mapping of the v3 protos):
// 64-bit integers as strings, bytes as base64, and every field at its zero
// value (0, false, empty) left out. What each endpoint answers was checked
// with curl against /usr/bin/etcd 3.4.23; see the tests.

/// An integer sent as a JSON string ("42") or number.
struct WireNumber<Value: FixedWidthInteger & Decodable>: Decodable {
    let value: Value

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            guard let number = Value(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text)' is not \(Value.isSigned ? "a" : "an unsigned") \(Value.bitWidth)-bit integer")
            }
            value = number
        } else {
            value = try container.decode(Value.self)
        }
    }
}

/// Revisions, lease ids and TTLs.
typealias WireInt = WireNumber<Int64>
/// Member and cluster ids.
typealias WireUInt = WireNumber<UInt64>

/// Bytes sent as base64.
struct WireBytes: Decodable {
    let bytes: [UInt8]

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not base64: '\(text.prefix(40))'")
        }
        bytes = [UInt8](data)
    }
}

struct WireHeader: Decodable {
    let revision: WireInt?
    let memberID: WireUInt?
    let raftTerm: WireUInt?

    enum CodingKeys: String, CodingKey {
        case revision
        case memberID = "member_id"
        case raftTerm = "raft_term"
    }
}

struct WireKeyValue: Decodable {
    let key: WireBytes?
    let value: WireBytes?
    let createRevision: WireInt?
    let modRevision: WireInt?
    let version: WireInt?
    let lease: WireInt?

    enum CodingKeys: String, CodingKey {
        case key, value, version, lease
        case createRevision = "create_revision"
        case modRevision = "mod_revision"
    }

    var keyValue: KeyValue {
        KeyValue(key: String(decoding: key?.bytes ?? [], as: UTF8.self), value: value?.bytes ?? [],
                 createRevision: createRevision?.value ?? 0, modRevision: modRevision?.value ?? 0,
                 version: version?.value ?? 0, lease: lease?.value ?? 0)
    }
}

struct WirePutResponse: Decodable {
    let header: WireHeader?
}

struct WireRangeResponse: Decodable {
    let header: WireHeader?
    let kvs: [WireKeyValue]?
    let count: WireInt?

    func result(fallbackRevision: Int64 = 0) -> RangeResult {
        RangeResult(kvs: (kvs ?? []).map(\.keyValue), count: count?.value ?? 0,
                    revision: header?.revision?.value ?? fallbackRevision)
    }
}

struct WireDeleteRangeResponse: Decodable {
    let header: WireHeader?
    let deleted: WireInt?

    func result(fallbackRevision: Int64 = 0) -> DeleteResult {
        DeleteResult(deleted: deleted?.value ?? 0, revision: header?.revision?.value ?? fallbackRevision)
    }
}

struct WireResponseOp: Decodable {
    let responsePut: WirePutResponse?
    let responseRange: WireRangeResponse?
    let responseDeleteRange: WireDeleteRangeResponse?

    enum CodingKeys: String, CodingKey {
        case responsePut = "response_put"
        case responseRange = "response_range"
        case responseDeleteRange = "response_delete_range"
    }
}

struct WireTxnResponse: Decodable {
    let header: WireHeader?
    let succeeded: Bool?
    let responses: [WireResponseOp]?
}

struct WireLeaseGrantResponse: Decodable {
    let header: WireHeader?
    let id: WireInt?
    let ttl: WireInt?
    let error: String?

    enum CodingKeys: String, CodingKey {
        case header, error
        case id = "ID"
        case ttl = "TTL"
    }
}

struct WireLeaseKeepAliveResponse: Decodable {
    let header: WireHeader?
    let id: WireInt?
    let ttl: WireInt?

    enum CodingKeys: String, CodingKey {
        case header
        case id = "ID"
        case ttl = "TTL"
    }
}

struct WireLeaseTimeToLiveResponse: Decodable {
    let header: WireHeader?
    let id: WireInt?
    let ttl: WireInt?
    let grantedTTL: WireInt?
    let keys: [WireBytes]?

    enum CodingKeys: String, CodingKey {
        case header, keys, grantedTTL
        case id = "ID"
        case ttl = "TTL"
    }
}

struct WireStatusResponse: Decodable {
    let header: WireHeader?
    let version: String?
    let leader: WireUInt?
    let raftTerm: WireUInt?
}

/// An error in a streamed answer (watch, keepalive): grpc-gateway's own shape.
struct WireStreamError: Decodable {
    let grpcCode: Int?
    let httpCode: Int?
    let message: String?

    enum CodingKeys: String, CodingKey {
        case message
        case grpcCode = "grpc_code"
        case httpCode = "http_code"
    }
}

/// One message of a streamed answer: `{"result": ...}` or `{"error": ...}`, one per line.
struct WireStreamMessage<Result: Decodable>: Decodable {
    let result: Result?
    let error: WireStreamError?
}

struct WireEvent: Decodable {
    let type: String?
    let kv: WireKeyValue?
}

struct WireWatchResponse: Decodable {
    let header: WireHeader?
    let created: Bool?
    let canceled: Bool?
    let compactRevision: WireInt?
    let cancelReason: String?
    let events: [WireEvent]?

    enum CodingKeys: String, CodingKey {
        case header, created, canceled, events
        case compactRevision = "compact_revision"
        case cancelReason = "cancel_reason"
    }
}

/// The body of a unary error answer: `{"error": "...", "message": "...", "code": 14}`.
struct WireErrorBody: Decodable {
    let error: String?
    let message: String?
    let code: Int?
}

/// A short account of why JSON did not decode, for `EtcdError.malformedResponse`.
func describeDecoding(_ error: any Error) -> String {
    func path(_ context: DecodingError.Context) -> String {
        var text = ""
        for key in context.codingPath {
            if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text.isEmpty ? "the top level" : text
    }
    guard let error = error as? DecodingError else { return "\(error)" }
    switch error {
    case let .dataCorrupted(context):
        if context.codingPath.isEmpty {
            // The parser's own complaint, where it has one (line and column).
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return "not JSON (\(underlying ?? context.debugDescription))"
        }
        return "bad value at \(path(context)): \(context.debugDescription)"
    case let .typeMismatch(type, context):
        return "expected \(type) at \(path(context))"
    case let .valueNotFound(type, context):
        return "missing \(type) at \(path(context))"
    case let .keyNotFound(key, context):
        return "missing field '\(key.stringValue)' at \(path(context))"
    @unknown default:
        return "\(error)"
    }
}

/// `bytes` as the base64 text etcd's gateway expects for keys and values.
func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
