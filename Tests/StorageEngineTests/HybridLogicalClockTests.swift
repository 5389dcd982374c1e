import StorageEngine
import Testing

/// A wall clock the test moves by hand, backwards too.
private final class ManualWallClock {
    var milliseconds: UInt64

    init(_ milliseconds: UInt64) {
        self.milliseconds = milliseconds
    }
}

@Suite("Hybrid logical clock")
struct HybridLogicalClockTests {
    @Test("timestamps strictly increase while the wall clock stalls and goes backwards")
    func monotonicWithBackwardsWallClock() {
        let wall = ManualWallClock(1_000_000)
        let clock = HybridLogicalClock(wallClock: { wall.milliseconds })
        var previous = clock.now()
        #expect(HybridLogicalClock.milliseconds(of: previous) == 1_000_000)
        #expect(HybridLogicalClock.counter(of: previous) == 0)
        for step in [0, 0, -500, -500, 10, 2_000, -1_999, 0, 1, -100_000] {
            wall.milliseconds = UInt64(Int64(wall.milliseconds) + Int64(step))
            for _ in 0..<3 {
                let next = clock.now()
                #expect(next > previous)
                previous = next
            }
        }
    }

    @Test("the clock follows the wall clock again once it catches up")
    func followsWallClock() {
        let wall = ManualWallClock(5_000)
        let clock = HybridLogicalClock(wallClock: { wall.milliseconds })
        _ = clock.now()
        wall.milliseconds = 4_000
        let lagging = clock.now()
        #expect(HybridLogicalClock.milliseconds(of: lagging) == 5_000)
        #expect(HybridLogicalClock.counter(of: lagging) == 1)
        wall.milliseconds = 6_000
        #expect(clock.now() == HybridLogicalClock.timestamp(milliseconds: 6_000, counter: 0))
    }

    @Test("observe(remote:) moves the clock past a remote timestamp")
    func observeRemote() {
        let wall = ManualWallClock(1_000)
        let clock = HybridLogicalClock(wallClock: { wall.milliseconds })
        let remote = HybridLogicalClock.timestamp(milliseconds: 9_000, counter: 42)
        #expect(clock.observe(remote: remote))
        #expect(clock.latest == remote)
        #expect(clock.now() == remote + 1)
        // An older remote timestamp leaves the clock alone.
        #expect(clock.observe(remote: 5))
        #expect(clock.now() == remote + 2)
    }

    @Test("a remote timestamp too far ahead is refused when a drift bound is set")
    func observeBeyondDrift() {
        let wall = ManualWallClock(10_000)
        let clock = HybridLogicalClock(wallClock: { wall.milliseconds }, maximumForwardDrift: 500)
        #expect(clock.observe(remote: HybridLogicalClock.timestamp(milliseconds: 10_500, counter: 3)))
        #expect(!clock.observe(remote: HybridLogicalClock.timestamp(milliseconds: 10_501, counter: 0)))
        #expect(clock.latest == HybridLogicalClock.timestamp(milliseconds: 10_500, counter: 3))
    }

    @Test("the counter carries into the milliseconds when it overflows")
    func counterOverflow() {
        let clock = HybridLogicalClock(
            wallClock: { 7 },
            startingAfter: HybridLogicalClock.timestamp(milliseconds: 7, counter: .max)
        )
        let next = clock.now()
        #expect(HybridLogicalClock.milliseconds(of: next) == 8)
        #expect(HybridLogicalClock.counter(of: next) == 0)
    }

    @Test("layout: 48 bits of milliseconds, 16 bits of counter")
    func layout() {
        let timestamp = HybridLogicalClock.timestamp(milliseconds: 0x1234_5678_9ABC, counter: 0xDEF0)
        #expect(timestamp == 0x1234_5678_9ABC_DEF0)
        #expect(HybridLogicalClock.timestamp(milliseconds: .max, counter: 0) >> 16 == HybridLogicalClock.maximumMilliseconds)
    }

    @Test("the system clock reads a plausible time")
    func systemClock() {
        let now = HybridLogicalClock.systemMilliseconds()
        #expect(now > 1_700_000_000_000)  // after November 2023
        let clock = HybridLogicalClock()
        #expect(HybridLogicalClock.milliseconds(of: clock.now()) >= now)
    }
}
