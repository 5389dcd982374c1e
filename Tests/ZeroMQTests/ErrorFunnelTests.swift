import Foundation
import Testing
import TestKit
import ZeroMQ

@Suite struct ErrorFunnelTests {
    @Test(arguments: ["nonsense", "tcp://", "tcp://127.0.0.1:notaport", "udp://127.0.0.1:5"])
    func badEndpointsThrowTypedErrors(endpoint: String) throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context: context, type: .router)
        #expect(throws: ZMQError.self) { try socket.bind(endpoint) }
        do {
            try socket.bind(endpoint)
        } catch {
            #expect(error.description.contains("zmq_bind"))
            #expect(!error.description.isEmpty)
        }
    }

    @Test func bindingABusyPortFails() throws {
        let context = try ZMQContext()
        let first = try ZMQSocket(context: context, type: .router)
        let endpoint = try first.bind("tcp://127.0.0.1:*")
        let second = try ZMQSocket(context: context, type: .router)
        #expect(throws: ZMQError.self) { try second.bind(endpoint) }
    }

    @Test func routerMandatoryReportsAnUnknownPeer() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context: context, type: .router)
        try router.setRouterMandatory(true)
        try router.bind("inproc://mandatory")
        #expect(throws: ZMQError.hostUnreachable) {
            try router.send([Array("nobody".utf8), [], Array("x".utf8)], dontWait: true)
        }
    }

    @Test func immediateDealerWithoutPeerWouldBlock() throws {
        let context = try ZMQContext()
        let dealer = try ZMQSocket(context: context, type: .dealer)
        try dealer.setImmediate(true)
        try dealer.connect("tcp://127.0.0.1:\(FreePort.allocate())")
        #expect(try dealer.send([Array("x".utf8)], dontWait: true) == false)
    }

    @Test func oversizeFrameDropsTheConnectionNotTheProcess() throws {
        let context = try ZMQContext()
        let router = try ZMQSocket(context: context, type: .router)
        try router.setMaximumMessageSize(1024)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let big = try ZMQSocket(context: context, type: .dealer)
        try big.connect(endpoint)
        try big.send([[UInt8](repeating: 1, count: 4096)])
        try router.setReceiveTimeout(milliseconds: 300)
        #expect(try router.receive() == nil)
        // Another peer within the limit is still served.
        let small = try ZMQSocket(context: context, type: .dealer)
        try small.connect(endpoint)
        try small.send([Array("ok".utf8)])
        try router.setReceiveTimeout(milliseconds: 5000)
        let frames = try #require(try router.receive())
        #expect(frames.last == Array("ok".utf8))
    }

    @Test func curveKeysSecureADealerRouterLink() throws {
        let context = try ZMQContext()
        let server = try ZMQCurveKeyPair.generate()
        let client = try ZMQCurveKeyPair.generate()
        #expect(server.publicKey.count == 32 && server.secretKey.count == 32)
        let router = try ZMQSocket(context: context, type: .router)
        try router.setCurveServer(true)
        try router.setCurveSecretKey(server.secretKey)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context: context, type: .dealer)
        try dealer.setCurveServerKey(server.publicKey)
        try dealer.setCurvePublicKey(client.publicKey)
        try dealer.setCurveSecretKey(client.secretKey)
        try dealer.connect(endpoint)
        try dealer.send([Array("secret".utf8)])
        try router.setReceiveTimeout(milliseconds: 5000)
        let frames = try #require(try router.receive())
        #expect(frames.last == Array("secret".utf8))
    }
}
