import Basics
import Glibc
import Synchronization
import TestKit
import Testing

/// `SignalWatch`: signals sent to the process (not a thread) reach the
/// handler from the moment the watch exists, and cancelling the last watch
/// gives the signal its default action back.
@Suite(.serialized) struct SignalWatchTests {
    /// The handler of `signal` now: SIG_DFL, SIG_IGN or a function.
    private static func disposition(_ number: Int32) -> sighandler_t? {
        var current = sigaction()
        sigaction(number, nil, &current)
        return current.__sigaction_handler.sa_handler
    }

    @Test func aSignalSentTheMomentTheWatchExistsIsNeverLost() async throws {
        // A DispatchSource registers on libdispatch's manager thread after
        // resume() returns; a signal in that window was discarded (the
        // ringctl lock test that hung on SIGINT). Here each round sends right
        // after init, from another thread than the one the pipe is read on.
        let seen = Mutex(0)
        for round in 1...200 {
            let watch = try SignalWatch([SIGUSR1]) { _ in seen.withLock { $0 += 1 } }
            kill(getpid(), SIGUSR1)
            try await waitUntil("signal \(round) to reach the handler", timeout: .seconds(5), interval: .milliseconds(1)) {
                seen.withLock { $0 } == round
            }
            watch.cancel()
        }
    }

    @Test func everyWatcherIsCalledAndTheLastCancelRestoresTheDefault() async throws {
        let first = Mutex<[Int32]>([]), second = Mutex<[Int32]>([])
        let one = try SignalWatch([SIGUSR2]) { number in first.withLock { $0.append(number) } }
        let two = try SignalWatch([SIGUSR2]) { number in second.withLock { $0.append(number) } }
        kill(getpid(), SIGUSR2)
        try await waitUntil("both watchers to see SIGUSR2") {
            first.withLock { $0 } == [SIGUSR2] && second.withLock { $0 } == [SIGUSR2]
        }
        one.cancel()
        one.cancel()  // idempotent: must not remove the other watcher
        kill(getpid(), SIGUSR2)
        try await waitUntil("the remaining watcher to see the second SIGUSR2") { second.withLock { $0 }.count == 2 }
        #expect(first.withLock { $0 } == [SIGUSR2], "a cancelled watcher is not called")
        #expect(Self.disposition(SIGUSR2).map { unsafeBitCast($0, to: Int.self) } != 0, "still caught while one watcher is left")
        two.cancel()
        #expect(Self.disposition(SIGUSR2) == nil, "SIG_DFL again (a null handler) after the last cancel")
    }
}
