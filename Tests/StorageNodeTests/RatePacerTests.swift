@testable import StorageNode
import Testing

/// The pacer anti-entropy and every migration transfer share.
@Suite struct RatePacerTests {
    @Test func thePacerSpacesWorkByItsBytesFromTheLaterOfNowAndTheLastCharge() {
        let start = ContinuousClock.now
        var pacer = RatePacer(bytesPerSecond: 1000, now: start)
        #expect(pacer.wait(at: start) == nil)
        #expect(pacer.charge(500, at: start) == .milliseconds(500))
        #expect(pacer.wait(at: start + .milliseconds(100)) == .milliseconds(400))
        // Charged again before it was due: the delays add up.
        #expect(pacer.charge(250, at: start + .milliseconds(100)) == .milliseconds(250))
        #expect(pacer.notBefore == start + .milliseconds(750))
        // Charged after it was due: counted from now.
        pacer.charge(1000, at: start + .seconds(2))
        #expect(pacer.notBefore == start + .seconds(3))
        #expect(pacer.wait(at: start + .seconds(3)) == nil)
        #expect(pacer.chargedBytes == 1750 && pacer.chargedDelay == .milliseconds(1750) && pacer.waits == 1)
        // Unlimited: nothing is charged, nothing waits.
        var unlimited = RatePacer(bytesPerSecond: 0, now: start)
        #expect(unlimited.charge(1 << 20, at: start) == .zero)
        #expect(unlimited.wait(at: start) == nil && unlimited.chargedBytes == 0)
        #expect(RatePacer.delay(bytes: 3, bytesPerSecond: 7) == .nanoseconds(428_571_428))
    }

    @Test func aHoldReplacesWhatTheChargesAskedWhateverTheRate() {
        let start = ContinuousClock.now
        var pacer = RatePacer(bytesPerSecond: 1000, now: start)
        pacer.charge(2000, at: start)
        #expect(pacer.notBefore == start + .seconds(2))
        // Earlier than the charges asked: the hold wins (a retry starts over).
        pacer.hold(until: start + .milliseconds(300))
        #expect(pacer.notBefore == start + .milliseconds(300))
        #expect(pacer.wait(at: start + .milliseconds(100)) == .milliseconds(200))
        #expect(pacer.wait(at: start + .milliseconds(300)) == nil)
        // Charges after a hold count from the later of now and the hold.
        #expect(pacer.charge(100, at: start) == .milliseconds(100))
        #expect(pacer.notBefore == start + .milliseconds(400))
        // The charged figures are not undone by a hold.
        #expect(pacer.chargedBytes == 2100 && pacer.chargedDelay == .milliseconds(2100) && pacer.waits == 1)
        // Unlimited: charges add nothing, but a hold still holds.
        var unlimited = RatePacer(bytesPerSecond: 0, now: start)
        unlimited.hold(until: start + .seconds(1))
        #expect(unlimited.wait(at: start) == .seconds(1))
        #expect(unlimited.charge(1 << 20, at: start) == .zero)
        #expect(unlimited.notBefore == start + .seconds(1))
    }
}
