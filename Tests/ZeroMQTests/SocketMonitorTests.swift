import Foundation
import Testing
import TestKit
import ZeroMQ

/// The socket monitor and the source descriptor of received messages, which
/// together tell a ROUTER which connection a request came in on and when that
/// connection closed. Synchronous: every socket stays on the test's thread.
@Suite struct SocketMonitorTests {
    let context: ZMQContext

    init() throws {
        context = try ZMQContext()
    }

    /// Waits (polling, with a deadline) for the monitor's next event.
    func nextEvent(_ monitor: ZMQSocketMonitor) throws -> ZMQSocketEvent {
        var event: ZMQSocketEvent?
        try waitUntilSync("a monitor event") {
            event = try monitor.next()
            return event != nil
        }
        return try #require(event)
    }

    @Test func acceptedAndDisconnectedCarryTheDescriptorThatMessagesReport() throws {
        let router = try ZMQSocket(context: context, type: .router)
        let monitor = try ZMQSocketMonitor(watching: router, events: [.accepted, .disconnected])
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        let poller = ZMQPoller()
        poller.add(router)
        for round in 0..<3 {
            let dealer = try ZMQSocket(context: context, type: .dealer)
            try dealer.connect(endpoint)
            try dealer.send([[], Array("hello \(round)".utf8)])
            // Polled first, as a reactor does: libzmq then prefetches the
            // message and makes up its routing-id frame without a descriptor.
            try waitUntilSync("the message") { try !poller.poll(timeout: .milliseconds(50)).isEmpty }
            let message = try #require(try router.receiveWithSource(dontWait: true))
            #expect(message.frames.count == 3 && message.frames.last == Array("hello \(round)".utf8))
            let accepted = try nextEvent(monitor)
            #expect(accepted.kind == .accepted && accepted.endpoint == endpoint)
            #expect(message.sourceDescriptor == accepted.value && accepted.value >= 0)
            dealer.close()
            let disconnected = try nextEvent(monitor)
            #expect(disconnected.kind == .disconnected && disconnected.value == accepted.value)
        }
        #expect(try monitor.next() == nil)
    }

    @Test func inprocMessagesHaveNoSourceDescriptor() throws {
        let router = try ZMQSocket(context: context, type: .router)
        try router.bind("inproc://no-descriptor")
        let dealer = try ZMQSocket(context: context, type: .dealer)
        try dealer.connect("inproc://no-descriptor")
        try dealer.send([[], Array("x".utf8)])
        try router.setReceiveTimeout(milliseconds: 5000)
        let message = try #require(try router.receiveWithSource())
        #expect(message.sourceDescriptor == -1)
        #expect(message.frames.last == Array("x".utf8))
    }
}
