@testable import StorageNode
import Testing

/// A node's catch-up after a start: ring, then hints, then a clean pass.
@Suite struct CatchUpTests {
    let start = ContinuousClock.now

    func tracker() -> CatchUp {
        CatchUp(hintRecheck: .seconds(1), passRetry: .seconds(2))
    }

    @Test func itWaitsForTheRingThenAsksEveryLivePeerOnce() {
        var catchUp = tracker()
        var peersRead = 0
        #expect(catchUp.tick(at: start, following: { false }, livePeers: { peersRead += 1; return ["a"] }) == .none)
        #expect(catchUp.phase == .waitingForRing && peersRead == 0)
        #expect(catchUp.tick(at: start, following: { true }, livePeers: { ["a", "b"] }) == .askForHints(["a", "b"]))
        #expect(catchUp.phase == .checkingHints && catchUp.hintCheckInFlight)
        // A check in flight is not started again.
        #expect(catchUp.tick(at: start, following: { true }, livePeers: { peersRead += 1; return ["a", "b"] }) == .none)
        #expect(peersRead == 0)
        #expect(!catchUp.isCaughtUp)
    }

    @Test func hintsLeftMeanAskingOnlyTheirHoldersAgainAfterTheRecheck() {
        var catchUp = tracker()
        _ = catchUp.tick(at: start, following: { true }, livePeers: { ["a", "b", "c"] })
        let passDue = catchUp.hintsChecked(holders: ["b", "c"], at: start)
        #expect(!passDue)
        #expect(catchUp.retryAt == start + .seconds(1) && !catchUp.hintCheckInFlight)
        #expect(catchUp.tick(at: start + .milliseconds(999), following: { true }, livePeers: { ["a", "b", "c"] }) == .none)
        // Only the holders that are still live are asked.
        #expect(catchUp.tick(at: start + .seconds(1), following: { true }, livePeers: { ["a", "b"] }) == .askForHints(["b"]))
        let passDueNow = catchUp.hintsChecked(holders: [], at: start + .seconds(1))
        #expect(passDueNow)
        #expect(catchUp.phase == .passQueued)
        // The catch-up pass finished cleanly: caught up.
        let caughtUp = catchUp.passFinished(failures: 0, at: start + .seconds(2))
        #expect(caughtUp)
        #expect(catchUp.isCaughtUp && catchUp.retryAt == nil)
        #expect(catchUp.tick(at: start + .seconds(3), following: { true }, livePeers: { ["a"] }) == .none)
    }

    @Test func holdersThatLeftOrNoLivePeersQueueThePassAtOnce() {
        var catchUp = tracker()
        #expect(catchUp.tick(at: start, following: { true }, livePeers: { [] }) == .queuePass)
        #expect(catchUp.phase == .passQueued && catchUp.hintHolders == nil && !catchUp.hintCheckInFlight)

        var other = tracker()
        _ = other.tick(at: start, following: { true }, livePeers: { ["a"] })
        _ = other.hintsChecked(holders: ["a"], at: start)
        // The only holder is no longer live: nobody is left to wait for.
        #expect(other.tick(at: start + .seconds(1), following: { true }, livePeers: { ["b"] }) == .queuePass)
        #expect(other.hintHolders == nil)
    }

    @Test func aPassWithFailuresIsRetriedAfterAPauseAskingEveryLivePeerAgain() {
        var catchUp = tracker()
        _ = catchUp.tick(at: start, following: { true }, livePeers: { ["a"] })
        _ = catchUp.hintsChecked(holders: [], at: start)
        let caughtUp = catchUp.passFinished(failures: 1, at: start)
        #expect(!caughtUp)
        #expect(catchUp.phase == .checkingHints && catchUp.hintHolders == nil && catchUp.retryAt == start + .seconds(2))
        #expect(catchUp.tick(at: start + .seconds(1), following: { true }, livePeers: { ["a", "b"] }) == .none)
        #expect(catchUp.tick(at: start + .seconds(2), following: { true }, livePeers: { ["a", "b"] }) == .askForHints(["a", "b"]))
    }

    @Test func onlyTheCatchUpPassCountsAndOnlyACaughtUpNodeFallsBehind() {
        var catchUp = tracker()
        // Not catching up yet: a pass's end and a down report change nothing.
        let caughtUpEarly = catchUp.passFinished(failures: 0, at: start)
        #expect(!caughtUpEarly)
        let restartedEarly = catchUp.fellBehind()
        #expect(!restartedEarly)
        #expect(catchUp.phase == .waitingForRing)
        _ = catchUp.tick(at: start, following: { true }, livePeers: { [] })
        let caughtUp = catchUp.passFinished(failures: 0, at: start)
        #expect(caughtUp)
        // Declared down: it checks hints again, asking every live peer.
        let restarted = catchUp.fellBehind()
        #expect(restarted)
        #expect(!catchUp.isCaughtUp && catchUp.phase == .checkingHints)
        #expect(catchUp.tick(at: start, following: { false }, livePeers: { ["a", "b"] }) == .askForHints(["a", "b"]))
    }
}
