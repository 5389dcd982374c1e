import CSignalPipe
import Foundation
import Synchronization

/// Turns signals into calls of a handler instead of their default action,
/// from the moment `init` returns until `cancel()`.
///
/// A C handler writes the signal's number to a pipe (the self-pipe trick) and
/// one thread reads the pipe and calls every watcher of that signal. Unlike a
/// `DispatchSource` for signals, which registers asynchronously on libdispatch's
/// manager thread after `SIG_IGN` is already set, nothing sent after `init`
/// returns is lost, whichever thread the kernel picks. When the last watcher
/// of a signal is cancelled, the signal gets its default action back.
public final class SignalWatch: Sendable {
    private let id: Int
    private let numbers: [Int32]

    /// Watches `numbers`; `handler` runs on the signal thread, so it should
    /// only hand the signal on (cancel a task, yield to a stream).
    public init(_ numbers: [Int32], handler: @escaping @Sendable (Int32) -> Void) throws(SignalWatchError) {
        self.numbers = numbers
        id = try SignalDispatch.shared.add(numbers, handler)
    }

    /// Stops calling the handler; idempotent.
    public func cancel() {
        SignalDispatch.shared.remove(id, numbers)
    }

    deinit { cancel() }
}

/// A signal handler could not be installed (the pipe or `sigaction` failed).
public struct SignalWatchError: Error, CustomStringConvertible {
    public let signal: Int32
    public let errno: Int32
    public var description: String { "cannot catch signal \(signal): \(String(cString: strerror(errno)))" }
}

/// The process's one signal pipe, its reading thread and the watchers.
private final class SignalDispatch: Sendable {
    static let shared = SignalDispatch()

    private struct State {
        var nextID = 0
        var reading = false
        var watchers: [Int32: [Int: @Sendable (Int32) -> Void]] = [:]
    }

    private let state = Mutex(State())

    func add(_ numbers: [Int32], _ handler: @escaping @Sendable (Int32) -> Void) throws(SignalWatchError) -> Int {
        let added: Result<Int, SignalWatchError> = state.withLock { state in
            let fd = ringstore_signal_pipe()
            guard fd >= 0 else { return .failure(SignalWatchError(signal: numbers.first ?? 0, errno: errno)) }
            if !state.reading {
                state.reading = true
                Thread.detachNewThread { [self] in read(fd) }
            }
            for number in numbers where state.watchers[number, default: [:]].isEmpty {
                guard ringstore_signal_catch(number) == 0 else {
                    return .failure(SignalWatchError(signal: number, errno: errno))
                }
            }
            let id = state.nextID
            state.nextID += 1
            for number in numbers { state.watchers[number, default: [:]][id] = handler }
            return .success(id)
        }
        return try added.get()
    }

    func remove(_ id: Int, _ numbers: [Int32]) {
        state.withLock { state in
            for number in numbers where state.watchers[number]?.removeValue(forKey: id) != nil {
                if state.watchers[number]?.isEmpty == true { _ = ringstore_signal_default(number) }
            }
        }
    }

    private func read(_ fd: Int32) {
        var byte: UInt8 = 0
        while true {
            let count = Glibc.read(fd, &byte, 1)
            if count == 1 {
                let number = Int32(byte)
                let handlers = state.withLock { state in state.watchers[number].map { Array($0.values) } ?? [] }
                for handler in handlers { handler(number) }
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
