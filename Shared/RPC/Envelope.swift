import RingProtocol
import SwiftProtobuf
import ZeroMQ

/// Encoding and decoding of the request and reply frames, as pure functions so
/// that every malformed shape can be tested without sockets.
///
/// On a ROUTER a request arrives as `[routing id][empty][RequestHeader][body]`;
/// a DEALER receives a reply as `[empty][ReplyHeader][body]`.
public enum Envelope {
    /// A request as a ROUTER received it.
    public struct Request: Sendable {
        public let routingID: [UInt8]
        public let header: WireRequestHeader
        public let body: [UInt8]
    }

    /// Why a request could not be read, and whether it can still be answered.
    public struct Malformed: Error, Sendable {
        /// The peer to answer, when the frames carried a usable routing envelope.
        public let routingID: [UInt8]?
        /// The request id to echo, when the header was readable.
        public let requestID: UInt64
        public let reason: String
    }

    /// Frames a request for a DEALER socket.
    public static func request(_ header: WireRequestHeader, body: [UInt8]) throws -> [ZMQFrame] {
        [[], try header.serializedBytes(), body]
    }

    /// Frames a reply to `routingID` for a ROUTER socket.
    public static func reply(to routingID: [UInt8], requestID: UInt64, status: WireStatusCode, message: String, body: [UInt8],
                             notLeader: Bool = false, leader: String = "") -> [ZMQFrame] {
        var header = WireReplyHeader()
        header.requestID = requestID
        header.code = status
        header.message = message
        header.notLeader = notLeader
        header.leader = leader
        // Serializing a message with only scalar and string fields cannot fail.
        let headerBytes: [UInt8] = (try? header.serializedBytes()) ?? []
        return [routingID, [], headerBytes, body]
    }

    /// Reads the frames a ROUTER received. Throws `Malformed` for a wrong frame
    /// count, a missing delimiter or an undecodable header.
    public static func parseRequest(_ frames: [ZMQFrame]) throws(Malformed) -> Request {
        guard let routingID = frames.first, !routingID.isEmpty else {
            throw Malformed(routingID: nil, requestID: 0, reason: "no routing id")
        }
        guard frames.count >= 2, frames[1].isEmpty else {
            throw Malformed(routingID: nil, requestID: 0, reason: "missing empty delimiter frame (\(frames.count) frames)")
        }
        guard frames.count == 4 else {
            throw Malformed(routingID: routingID, requestID: 0,
                            reason: "expected frames [empty][header][body], got \(frames.count - 1)")
        }
        let header: WireRequestHeader
        do {
            header = try WireRequestHeader(serializedBytes: frames[2])
        } catch {
            throw Malformed(routingID: routingID, requestID: 0, reason: "undecodable request header")
        }
        guard header.requestID != 0 else {
            throw Malformed(routingID: routingID, requestID: 0, reason: "request id 0 is reserved")
        }
        guard header.version == wireProtocolVersion else {
            throw Malformed(routingID: routingID, requestID: header.requestID,
                            reason: "unsupported protocol version \(header.version), this server speaks \(wireProtocolVersion)")
        }
        guard !header.method.isEmpty else {
            throw Malformed(routingID: routingID, requestID: header.requestID, reason: "missing method name")
        }
        return Request(routingID: routingID, header: header, body: frames[3])
    }

    /// A reply as a DEALER received it.
    public struct Reply: Sendable {
        public let header: WireReplyHeader
        public let body: [UInt8]
    }

    /// Reads the frames a DEALER received; `nil` for anything that is not a reply.
    public static func parseReply(_ frames: [ZMQFrame]) -> Reply? {
        guard frames.count == 3, frames[0].isEmpty,
              let header = try? WireReplyHeader(serializedBytes: frames[1])
        else { return nil }
        return Reply(header: header, body: frames[2])
    }
}
