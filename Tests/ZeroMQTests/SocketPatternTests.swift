import Foundation
import Testing
import TestKit
import ZeroMQ

/// Each socket pattern over real tcp and inproc transports. Tests are
/// synchronous so that every socket stays on the test's own thread.
@Suite struct SocketPatternTests {
    let context: ZMQContext

    init() throws {
        context = try ZMQContext()
    }

    /// A blocking receive that gives up (returns nil) after `ms`.
    func receive(_ socket: ZMQSocket, ms: Int32 = 5000) throws -> [ZMQFrame]? {
        try socket.setReceiveTimeout(milliseconds: ms)
        return try socket.receive()
    }

    @Test func reqRepRoundTrip() throws {
        let rep = try ZMQSocket(context: context, type: .rep)
        let endpoint = try rep.bind("tcp://127.0.0.1:*")
        let req = try ZMQSocket(context: context, type: .req)
        try req.connect(endpoint)
        try req.send(Array("ping".utf8))
        #expect(try receive(rep) == [Array("ping".utf8)])
        try rep.send(Array("pong".utf8))
        #expect(try receive(req) == [Array("pong".utf8)])
    }

    @Test func bindToWildcardPortReportsTheRealPort() throws {
        let rep = try ZMQSocket(context: context, type: .rep)
        let endpoint = try rep.bind("tcp://127.0.0.1:*")
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        let port = UInt16(endpoint.split(separator: ":").last ?? "")
        #expect(port != nil && port != 0)
    }

    @Test func dealerRouterCarriesRoutingIDAndManyRequestsInFlight() throws {
        let router = try ZMQSocket(context: context, type: .router)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context: context, type: .dealer)
        try dealer.setRoutingID(Array("client-1".utf8))
        try dealer.connect(endpoint)
        // Ten requests in flight before any answer: no REQ lockstep.
        for index in 0..<10 {
            try dealer.send([[], Array("request \(index)".utf8)])
        }
        var received: [[ZMQFrame]] = []
        for _ in 0..<10 {
            let frames = try #require(try receive(router))
            received.append(frames)
        }
        #expect(received.allSatisfy { $0.count == 3 && $0[0] == Array("client-1".utf8) && $0[1].isEmpty })
        #expect(received.map { String(decoding: $0[2], as: UTF8.self) } == (0..<10).map { "request \($0)" })
        // Answer in reverse order, routed by id.
        for frames in received.reversed() {
            try router.send([frames[0], [], frames[2]])
        }
        var answers: [String] = []
        for _ in 0..<10 {
            let frames = try #require(try receive(dealer))
            answers.append(String(decoding: frames[1], as: UTF8.self))
        }
        #expect(answers == (0..<10).reversed().map { "request \($0)" })
    }

    @Test func pubSubFiltersByTopic() throws {
        let pub = try ZMQSocket(context: context, type: .pub)
        let endpoint = try pub.bind("tcp://127.0.0.1:*")
        let sub = try ZMQSocket(context: context, type: .sub)
        try sub.subscribe("ring")
        try sub.connect(endpoint)
        // A subscription takes effect asynchronously: publish until one arrives.
        try sub.setReceiveTimeout(milliseconds: 20)
        var first: [ZMQFrame]?
        try waitUntilSync("subscription to take effect") {
            try pub.send([Array("membership".utf8), Array("m".utf8)])
            try pub.send([Array("ring".utf8), Array("r".utf8)])
            first = try sub.receive()
            return first != nil
        }
        #expect(first?.first == Array("ring".utf8))
        // Drain, then check that only "ring" messages pass the filter.
        while try sub.receive(dontWait: true) != nil {}
        try pub.send([Array("membership".utf8), Array("x".utf8)])
        try pub.send([Array("ring".utf8), Array("y".utf8)])
        #expect(try receive(sub) == [Array("ring".utf8), Array("y".utf8)])
    }

    @Test func pushPullOverInproc() throws {
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.bind("inproc://push-pull-test")
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect("inproc://push-pull-test")
        try push.send(Array("work".utf8))
        #expect(try receive(pull) == [Array("work".utf8)])
    }

    @Test func multipartKeepsEmptyBinaryAndLargeFrames() throws {
        let pair = try ZMQSocket(context: context, type: .pair)
        try pair.bind("inproc://multipart-test")
        let other = try ZMQSocket(context: context, type: .pair)
        try other.connect("inproc://multipart-test")
        let binary = (0...255).map { UInt8($0) }
        let large = [UInt8](repeating: 0xAB, count: 1 << 20)
        let frames: [ZMQFrame] = [[], binary, [0], large, []]
        try other.send(frames)
        #expect(try receive(pair) == frames)
    }
}
