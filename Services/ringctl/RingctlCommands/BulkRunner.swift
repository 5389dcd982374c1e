import ArgumentParser
import Foundation
import Synchronization

/// Runs the `--stdin` modes: reads lines, keeps up to `concurrency` requests in
/// flight, and prints each answer as it arrives.
enum BulkRunner {
    /// Sends every line of stdin through `handle`, which returns the key to print
    /// and the outcome, up to `concurrency` lines at a time. Lines with the same
    /// `orderedBy` key run one after the other, in input order (a write of a key
    /// is sent only after the previous write of that key was answered). Throws
    /// `ExitCode(1)` when any line failed.
    ///
    /// `nextChunk` and `output` default to stdin and stdout.
    ///
    /// `progress` names the operation on a progress line that stderr shows
    /// (rewritten in place) when it is a terminal and stdout is not: a bulk
    /// load with its answers going to a file shows how far it got.
    static func run(concurrency: Int, orderedBy orderKey: @escaping ([UInt8]) -> [UInt8]? = { _ in nil },
                    nextChunk: (() async throws -> [UInt8]?)? = nil, output: OutputSink = OutputSink(),
                    progress operation: String? = nil,
                    handle: @escaping @Sendable ([UInt8]) async -> (key: [UInt8], outcome: BulkOutcome)) async throws {
        let standardInput = StandardInput()
        let nextChunk = nextChunk ?? { try await standardInput.nextChunk() }
        let progress = operation.flatMap { StdIO.isTerminal(2) && !StdIO.isTerminal(1) ? BulkProgress(operation: $0) : nil }
        let flusher = Task {
            var ticks = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                output.flush()
                ticks += 1
                if ticks % 5 == 0 { progress?.show() }
            }
        }
        defer { flusher.cancel() }
        var splitter = LineSplitter()
        var lineCount = 0
        var failures = 0
        try await withThrowingTaskGroup(of: (failed: Bool, orderKey: [UInt8]?).self) { group in
            var inFlight = 0
            var keysInFlight: [[UInt8]: Int] = [:]
            func finished(_ result: (failed: Bool, orderKey: [UInt8]?)) {
                inFlight -= 1
                if result.failed { failures += 1 }
                if let key = result.orderKey {
                    keysInFlight[key, default: 1] -= 1
                    if keysInFlight[key] == 0 { keysInFlight.removeValue(forKey: key) }
                }
            }
            var lines: [[UInt8]] = []
            var atEnd = false
            while !atEnd {
                lines.removeAll(keepingCapacity: true)
                if let chunk = try await nextChunk() {
                    splitter.feed(chunk) { lines.append($0) }
                } else {
                    atEnd = true
                    if let last = splitter.finish() { lines.append(last) }
                }
                for line in lines {
                    let key = orderKey(line)
                    while inFlight >= concurrency || key.map({ keysInFlight[$0] != nil }) == true,
                          let result = try await group.next() {
                        finished(result)
                    }
                    group.addTask {
                        let (printed, outcome) = await handle(line)
                        var bytes: [UInt8] = []
                        outcome.append(key: printed, to: &bytes)
                        output.append(bytes)
                        progress?.answered(failed: outcome.isFailure)
                        return (outcome.isFailure, key)
                    }
                    inFlight += 1
                    if let key { keysInFlight[key, default: 0] += 1 }
                    lineCount += 1
                }
            }
            for try await result in group { finished(result) }
        }
        flusher.cancel()
        output.flush()
        progress?.finish()
        if failures > 0 {
            printError("ringctl: \(failures) of \(lineCount) lines failed")
            throw ExitCode(1)
        }
    }
}

/// The progress line of a bulk run, on a terminal's stderr: lines answered,
/// the rate, failures; rewritten in place every quarter second.
final class BulkProgress: Sendable {
    let operation: String
    private let answeredCount = Atomic<Int>(0)
    private let failedCount = Atomic<Int>(0)
    private let started = ContinuousClock.now

    init(operation: String) {
        self.operation = operation
    }

    func answered(failed: Bool) {
        answeredCount.add(1, ordering: .relaxed)
        if failed { failedCount.add(1, ordering: .relaxed) }
    }

    /// `put: 12345 lines, 8210/s, 0 failed`.
    var line: String {
        let done = answeredCount.load(ordering: .relaxed), failed = failedCount.load(ordering: .relaxed)
        let seconds = max(0.001, (ContinuousClock.now - started).inSeconds)
        return "\(operation): \(done) lines, \(Int(Double(done) / seconds))/s, \(failed) failed, \(String(format: "%.1f", seconds)) s"
    }

    func show() {
        StdIO.write(2, text: "\r\u{1B}[K" + line)
    }

    /// The last figures, on a line of their own.
    func finish() {
        StdIO.write(2, text: "\r\u{1B}[K" + line + "\n")
    }
}
