import Foundation
import Synchronization
import Testing
import TestKit
import ZeroMQ

@Suite struct PollerAndShutdownTests {
    @Test func pollTimesOutWithNothingReady() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.bind("inproc://poll-timeout")
        let poller = ZMQPoller()
        poller.add(pull)
        let clock = ContinuousClock()
        let start = clock.now
        let ready = try poller.poll(timeout: .milliseconds(50))
        #expect(ready.isEmpty)
        #expect(clock.now - start >= .milliseconds(45))
    }

    @Test func pollReportsTheReadySocketOnly() throws {
        let context = try ZMQContext()
        let first = try ZMQSocket(context: context, type: .pull)
        try first.bind("inproc://poll-first")
        let second = try ZMQSocket(context: context, type: .pull)
        try second.bind("inproc://poll-second")
        let push = try ZMQSocket(context: context, type: .push)
        try push.connect("inproc://poll-second")
        let poller = ZMQPoller()
        poller.add(first)
        let secondIndex = poller.add(second)
        try push.send(Array("x".utf8))
        let ready = try poller.poll(timeout: .seconds(5))
        #expect(ready == [secondIndex])
        #expect(poller.readyEvents(at: secondIndex).contains(.readable))
        #expect(try second.receive(dontWait: true) == [Array("x".utf8)])
        #expect(try first.receive(dontWait: true) == nil)
    }

    @Test func wakerWakesAPollFromAnotherThread() throws {
        let waker = try Waker()
        let poller = ZMQPoller()
        let index = poller.add(fileDescriptor: waker.fileDescriptor)
        let thread = Thread { waker.wake() }
        thread.start()
        let ready = try poller.poll(timeout: .seconds(5))
        #expect(ready == [index])
        waker.drain()
        #expect(try poller.poll(timeout: .zero).isEmpty)
    }

    @Test func receiveTimeoutAndDontWaitReturnNil() throws {
        let context = try ZMQContext()
        let pull = try ZMQSocket(context: context, type: .pull)
        try pull.bind("inproc://nothing")
        #expect(try pull.receive(dontWait: true) == nil)
        try pull.setReceiveTimeout(milliseconds: 20)
        #expect(try pull.receive() == nil)
    }

    @Test func contextShutdownEndsABlockedReceiveWithTerminated() async throws {
        let context = try ZMQContext()
        let outcome = Mutex<ZMQError?>(nil)
        let done = Mutex(false)
        let blocking = Mutex(false)
        let thread = Thread {
            do {
                let pull = try ZMQSocket(context: context, type: .pull)
                try pull.bind("inproc://blocked")
                blocking.withLock { $0 = true }
                _ = try pull.receive()  // blocks: nobody sends
            } catch {
                outcome.withLock { $0 = error as? ZMQError }
            }
            done.withLock { $0 = true }
        }
        thread.start()
        try await waitUntil("receiver thread to start blocking") { blocking.withLock { $0 } }
        context.shutdown()
        try await waitUntil("blocked receive to end") { done.withLock { $0 } }
        #expect(outcome.withLock { $0 } == .terminated)
    }

    @Test func closeIsIdempotentAndSocketsCloseInDeinit() throws {
        let context = try ZMQContext()
        let socket = try ZMQSocket(context: context, type: .dealer)
        socket.close()
        socket.close()
        #expect(socket.isClosed)
        // Sockets dropped without close() are closed by deinit; the context
        // then terminates without hanging when it goes out of scope.
        for _ in 0..<100 {
            let dealer = try ZMQSocket(context: context, type: .dealer)
            try dealer.connect("tcp://127.0.0.1:1")
        }
    }
}
