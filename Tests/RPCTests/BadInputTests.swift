import Foundation
import RPC
import RingProtocol
import SwiftProtobuf
import Testing
import TestKit
import ZeroMQ

/// Malformed requests sent over a raw DEALER: each gets INVALID_ARGUMENT
/// (UNIMPLEMENTED for an unknown method) or is dropped, and the server keeps
/// serving valid requests afterwards.
@Suite struct BadInputTests {
    static func header(method: String = TestMethods.echo.path, id: UInt64 = 7, version: UInt32 = wireProtocolVersion) -> [UInt8] {
        let header = WireRequestHeader.with {
            $0.version = version
            $0.method = method
            $0.requestID = id
            $0.caller = "bad-input-test"
        }
        return (try? header.serializedBytes()) ?? []
    }

    static var validBody: [UInt8] { (try? payload("ok").serializedBytes()) ?? [] }

    /// (name, frames as sent by the DEALER, expected status or nil for "dropped", expected echoed id)
    static let cases: [(String, [ZMQFrame], WireStatusCode?, UInt64)] = [
        ("garbage single frame", [[0xFF, 0x00, 0x13]], nil, 0),
        ("garbage frames without delimiter", [[1, 2], [3], [4]], nil, 0),
        ("delimiter only", [[]], .invalidArgument, 0),
        ("header without body", [[], header()], .invalidArgument, 0),
        ("too many frames", [[], header(), validBody, [1, 2, 3]], .invalidArgument, 0),
        ("undecodable header", [[], [0xFF, 0xFF, 0xFF, 0xFF], validBody], .invalidArgument, 0),
        ("request id zero", [[], header(id: 0), validBody], .invalidArgument, 0),
        ("future protocol version", [[], header(version: 99), validBody], .invalidArgument, 7),
        ("missing method", [[], header(method: ""), validBody], .invalidArgument, 7),
        ("unknown method", [[], header(method: "/ringstore.v1.Nope/Nothing"), validBody], .unimplemented, 7),
        ("undecodable body", [[], header(), [0x0A, 0xFF, 0xFF, 0xFF, 0x0F]], .invalidArgument, 7),
    ]

    @Test(arguments: 0..<cases.count)
    func malformedRequestIsAnsweredOrDropped(index: Int) async throws {
        let (name, frames, expected, expectedID) = Self.cases[index]
        let harness = try await TestService.start()
        let reply = try await Task.detached {
            try Self.sendRaw(frames, to: harness.endpoint, waitMilliseconds: expected == nil ? 300 : 5000)
        }.value
        if let expected {
            let parsed = try #require(reply.flatMap(Envelope.parseReply), "\(name): no reply")
            #expect(parsed.header.code == expected, "\(name)")
            #expect(parsed.header.requestID == expectedID, "\(name)")
            #expect(!parsed.header.message.isEmpty, "\(name): the error says why")
        } else {
            #expect(reply == nil, "\(name): expected the frame to be dropped")
        }
        // The server still answers a valid request.
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        #expect(try await client.call(TestMethods.echo, payload("still here")).payload == Data("still here".utf8))
        client.close()
        try await harness.stop()
    }

    @Test func oversizeFrameIsDroppedAndTheServerKeepsServing() async throws {
        let harness = try await TestService.start()  // limit: 64 KiB per frame
        let huge = [UInt8](repeating: 0x41, count: 256 * 1024)
        let reply = try await Task.detached {
            try Self.sendRaw([[], Self.header(), huge], to: harness.endpoint, waitMilliseconds: 300)
        }.value
        #expect(reply == nil)
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        #expect(try await client.call(TestMethods.echo, payload("fine")).payload == Data("fine".utf8))
        client.close()
        try await harness.stop()
    }

    @Test func randomFramesNeverStopTheServer() async throws {
        let harness = try await TestService.start()
        try await Task.detached {
            var generator = SeededGenerator(seed: 42)
            let context = try ZMQContext()
            let dealer = try ZMQSocket(context: context, type: .dealer)
            try dealer.connect(harness.endpoint)
            for _ in 0..<2000 {
                let frameCount = Int(generator.next() % 5) + 1
                var frames: [ZMQFrame] = []
                for _ in 0..<frameCount {
                    let length = Int(generator.next() % 64)
                    frames.append((0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
                }
                // Sometimes a valid envelope around a random body, to reach the decoders.
                if generator.next() % 3 == 0 { frames = [[], Self.header(), frames[0]] }
                try dealer.send(frames)
            }
            dealer.close()
        }.value
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        #expect(try await client.call(TestMethods.echo, payload("alive")).payload == Data("alive".utf8))
        client.close()
        try await harness.stop()
    }

    /// Sends raw frames from a fresh DEALER and returns the first reply, if any.
    static func sendRaw(_ frames: [ZMQFrame], to endpoint: String, waitMilliseconds: Int32) throws -> [ZMQFrame]? {
        let context = try ZMQContext()
        let dealer = try ZMQSocket(context: context, type: .dealer)
        try dealer.connect(endpoint)
        try dealer.send(frames)
        try dealer.setReceiveTimeout(milliseconds: waitMilliseconds)
        return try dealer.receive()
    }
}

