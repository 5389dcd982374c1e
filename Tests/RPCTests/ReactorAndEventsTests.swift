import Foundation
import RPC
import RingProtocol
import Synchronization
import Testing
import TestKit
import ZeroMQ

@Suite struct ReactorAndEventsTests {
    @Test func timersFireAndPostedWorkRunsOnTheReactorThread() async throws {
        let ticks = Counter()
        let once = Counter()
        let harness = try await ReactorHarness { reactor in
            reactor.every(.milliseconds(10)) { _ = ticks.increment() }
            reactor.after(.milliseconds(10)) { _ = once.increment() }
            return (reactor, "")
        }
        try await waitUntil("three ticks") { ticks.count >= 3 }
        let posted = Counter()
        harness.post { _ in _ = posted.increment() }
        try await waitUntil("posted work") { posted.count == 1 }
        #expect(once.count == 1)
        try await harness.stop()
    }

    @Test func cancelledTimerNeverFires() async throws {
        let fired = Counter()
        let later = Counter()
        let harness = try await ReactorHarness { reactor in
            let id = reactor.after(.milliseconds(30)) { _ = fired.increment() }
            reactor.cancelTimer(id)
            reactor.after(.milliseconds(60)) { _ = later.increment() }
            return (reactor, "")
        }
        try await waitUntil("the later timer") { later.count == 1 }
        #expect(fired.count == 0)
        try await harness.stop()
    }

    @Test func publishedEventsReachSubscribersInOrderWithSequenceNumbers() async throws {
        let harness = try await ReactorHarness { reactor in
            let publisher = try EventPublisher(reactor: reactor, endpoint: "tcp://127.0.0.1:*", source: "test")
            return (publisher, publisher.endpoint)
        }
        let context = try ZMQContext()
        let subscription = try EventSubscription(context: context, endpoints: [harness.endpoint], topics: ["ring"])
        // PUB drops what it sends before the subscription is live: publish
        // "probe" events until one arrives, then the real ones.
        var iterator = subscription.events.makeAsyncIterator()
        let gotProbe = Counter()
        let probeTask = Task {
            while gotProbe.count == 0 && !Task.isCancelled {
                harness.withOwner(as: EventPublisher.self) { $0.publish(topic: "ring", type: "probe") }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        var received: [ReceivedEvent] = []
        while let event = await iterator.next() {
            if event.event.type == "probe" {
                if gotProbe.count == 0 {
                    _ = gotProbe.increment()
                    try await probeTask.value
                    harness.withOwner(as: EventPublisher.self) { publisher in
                        publisher.publish(topic: "membership", type: "member_joined")  // filtered out
                        publisher.publish(topic: "ring", type: "ring_changed", epoch: 3)
                        publisher.publish(topic: "ring", type: "ring_changed", epoch: 4)
                    }
                }
                continue
            }
            received.append(event)
            if received.count == 2 { break }
        }
        #expect(received.map(\.topic) == ["ring", "ring"])
        #expect(received.map(\.event.epoch) == [3, 4])
        #expect(received[1].event.seq == received[0].event.seq + 1)
        #expect(received.allSatisfy { $0.event.source == "test" && $0.event.timeUnixMicros > 0 })
        subscription.close()
        try await harness.stop()
    }
}
