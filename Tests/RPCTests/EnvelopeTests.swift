import RPC
import RingProtocol
import Testing
import ZeroMQ

@Suite struct EnvelopeTests {
    @Test func requestRoundTripsThroughTheRouterShape() throws {
        let header = WireRequestHeader.with {
            $0.version = wireProtocolVersion
            $0.method = "/ringstore.v1.Storage/Health"
            $0.requestID = 99
            $0.timeoutMicros = 1_000_000
            $0.caller = "me"
        }
        let frames = try Envelope.request(header, body: [1, 2, 3])
        #expect(frames.count == 3 && frames[0].isEmpty)
        let parsed = try Envelope.parseRequest([[9, 9]] + frames)
        #expect(parsed.routingID == [9, 9])
        #expect(parsed.header == header)
        #expect(parsed.body == [1, 2, 3])
    }

    @Test func replyRoundTripsThroughTheDealerShape() throws {
        let frames = Envelope.reply(to: [1], requestID: 5, status: .notFound, message: "no such key", body: [])
        #expect(frames[0] == [1])
        let reply = try #require(Envelope.parseReply(Array(frames.dropFirst())))
        #expect(reply.header.requestID == 5)
        #expect(reply.header.code == .notFound)
        #expect(reply.header.message == "no such key")
    }

    @Test(arguments: [
        [[UInt8]](),
        [[]],
        [[1]],
        [[1], [2]],
        [[1], []],
        [[1], [], [0xFF]],
    ] as [[[UInt8]]])
    func malformedRouterFramesAreRejected(frames: [[UInt8]]) {
        #expect(throws: Envelope.Malformed.self) { try Envelope.parseRequest(frames) }
    }

    @Test func nonReplyFramesAreNotReplies() {
        #expect(Envelope.parseReply([]) == nil)
        #expect(Envelope.parseReply([[1], [], []]) == nil)
        #expect(Envelope.parseReply([[], [0xFF, 0xFF]]) == nil)
    }

    @Test func statusNamesAreGRPCs() {
        #expect(WireStatusCode.invalidArgument.name == "INVALID_ARGUMENT")
        #expect(WireStatusCode.invalidArgument.rawValue == 3)
        #expect(WireStatusCode.unavailable.rawValue == 14)
        #expect(WireStatusCode.deadlineExceeded.name == "DEADLINE_EXCEEDED")
    }
}
