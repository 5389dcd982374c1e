import Basics
import Foundation
import Synchronization

/// One operation of a fault-injection workload, as the checker sees it.
struct CheckedOperation: Sendable {
    enum Kind: String, Sendable { case put, get }

    /// `unknown`: the call may or may not have taken effect (a timeout, or a
    /// coordinator that answered too few replicas acknowledged); `failed`: it
    /// certainly did not (never sent, or refused before anything was written).
    enum Outcome: String, Sendable { case pending, ok, failed, unknown }

    let id: Int
    /// Who issued it: "writer", "reader-1", "final-r3", ...
    let process: String
    let kind: Kind
    let key: String
    /// The value a put wrote (unique per write, so a read names its write).
    let written: String?
    /// The coordinator the call went to.
    let node: Int
    let invoked: Duration
    var completed: Duration?
    var outcome: Outcome = .pending
    /// What a successful get returned; nil: not found.
    var read: String?
    var error: String?
}

/// The operations of one run, recorded by concurrent workload tasks.
final class OperationHistory: Sendable {
    private let clock = ContinuousClock()
    let start: ContinuousClock.Instant
    private let operations = Mutex<[CheckedOperation]>([])

    init() { start = ContinuousClock().now }

    /// Time since the history started.
    func now() -> Duration { clock.now - start }

    /// Records the invocation of an operation and returns its id.
    func invoke(_ process: String, _ kind: CheckedOperation.Kind, key: String, value: String? = nil, node: Int) -> Int {
        let time = now()
        return operations.withLock { operations in
            let id = operations.count
            operations.append(CheckedOperation(id: id, process: process, kind: kind, key: key, written: value, node: node, invoked: time))
            return id
        }
    }

    /// Records how operation `id` ended.
    func complete(_ id: Int, _ outcome: CheckedOperation.Outcome, read: String? = nil, error: String? = nil) {
        let time = now()
        operations.withLock { operations in
            operations[id].completed = time
            operations[id].outcome = outcome
            operations[id].read = read
            operations[id].error = error
        }
    }

    var snapshot: [CheckedOperation] { operations.withLock { $0 } }
}

/// The faults a nemesis injected, with when each began and ended.
final class FaultLog: Sendable {
    struct Fault: Sendable {
        let what: String
        let began: Duration
        var healed: Duration?
    }

    private let history: OperationHistory
    private let faults = Mutex<[Fault]>([])

    init(history: OperationHistory) { self.history = history }

    /// Records a fault that begins now; returns its index for `healed`.
    @discardableResult
    func inject(_ what: String) -> Int {
        let time = history.now()
        return faults.withLock { faults in
            faults.append(Fault(what: what, began: time))
            return faults.count - 1
        }
    }

    /// Records that fault `index` is over now.
    func healed(_ index: Int) {
        let time = history.now()
        faults.withLock { $0[index].healed = time }
    }

    var all: [Fault] { faults.withLock { $0 } }
    var count: Int { faults.withLock { $0.count } }
    /// When the last fault ended (or began, if one never ended).
    var lastFaultEnd: Duration? { all.map { $0.healed ?? $0.began }.max() }
}

/// What the checker found in one run.
struct CheckReport: Sendable, CustomStringConvertible {
    var nemesis = ""
    var operations = 0
    var putsOK = 0, putsUnknown = 0, putsFailed = 0
    var getsOK = 0, getsFailed = 0
    var finalReads = 0
    var faults = 0
    /// Acknowledged writes that a final read (after faults stopped and repair
    /// ran) did not return, nor anything written after them.
    var lostWrites: [String] = []
    /// Reads that returned a value no write of that key wrote (or a write that
    /// certainly failed, or one invoked only after the read completed).
    var phantomReads: [String] = []
    /// Reads during the run that missed a write acknowledged before they began.
    var staleReads: [String] = []
    /// Final reads that failed although every node was back.
    var failedFinalReads: [String] = []
    /// Keys whose replicas still disagree after convergence.
    var divergentKeys: [String] = []
    var keysCompared = 0
    var convergenceMethod = ""
    /// From the end of the last fault to identical replicas (the workload ran
    /// on for a moment after the last fault, so replicas could not agree before it stopped).
    var convergeTime: Duration?
    /// From the workload's stop to identical replicas.
    var convergenceStepTime: Duration?
    var duration: Duration = .zero
    /// Latencies of acknowledged puts and successful gets: median, 99th percentile, maximum.
    var putLatency: (p50: Duration, p99: Duration, max: Duration) = (.zero, .zero, .zero)
    /// The slowest successful operation of the workload, described.
    var slowest = ""
    /// The faults, with when each began and healed.
    var faultTimeline = ""
    var getLatency: (p50: Duration, p99: Duration, max: Duration) = (.zero, .zero, .zero)

    static func percentiles(_ durations: [Duration]) -> (p50: Duration, p99: Duration, max: Duration) {
        let sorted = durations.sorted()
        guard let last = sorted.last else { return (.zero, .zero, .zero) }
        return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, sorted.count * 99 / 100)], last)
    }

    static func latencies(_ figures: (p50: Duration, p99: Duration, max: Duration)) -> String {
        "p50 \(seconds(figures.p50)), p99 \(seconds(figures.p99)), max \(seconds(figures.max))"
    }

    var isClean: Bool {
        lostWrites.isEmpty && phantomReads.isEmpty && staleReads.isEmpty && failedFinalReads.isEmpty && divergentKeys.isEmpty
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.2fs", duration.inSeconds)
    }

    var description: String {
        var lines = [
            "fault-check [\(nemesis)]: operations checked \(operations) (puts ok \(putsOK), unknown \(putsUnknown), failed \(putsFailed); "
                + "gets ok \(getsOK), failed \(getsFailed); final reads \(finalReads))",
            "fault-check [\(nemesis)]: faults injected \(faults), acknowledged writes lost \(lostWrites.count), "
                + "phantom reads \(phantomReads.count), stale reads \(staleReads.count), "
                + "divergent keys \(divergentKeys.count) of \(keysCompared), "
                + "time to converge after the last fault \(convergeTime.map(Self.seconds) ?? "never") "
                + "(\(convergenceStepTime.map(Self.seconds) ?? "never") after the workload stopped), run \(Self.seconds(duration))",
            "fault-check [\(nemesis)]: convergence: \(convergenceMethod)",
            "fault-check [\(nemesis)]: latency of puts \(Self.latencies(putLatency)), of gets \(Self.latencies(getLatency)); slowest: \(slowest)",
            "fault-check [\(nemesis)]: faults: \(faultTimeline)",
        ]
        for (name, list) in [("lost", lostWrites), ("phantom", phantomReads), ("stale", staleReads),
                             ("final read failed", failedFinalReads), ("divergent", divergentKeys)] where !list.isEmpty {
            lines.append("  \(name): " + list.prefix(5).joined(separator: " | ") + (list.count > 5 ? " (+\(list.count - 5) more)" : ""))
        }
        return lines.joined(separator: "\n")
    }
}

/// Checks a history of puts and gets against what a store with strict quorums
/// (W + R > N) promises, in the manner of Jepsen's register checkers but per
/// read rather than as a full linearizability search:
///
/// - a read returns a value some put of that key wrote, not one that certainly
///   failed, and not one whose put began only after the read ended;
/// - a read never misses a put acknowledged before the read began: the value it
///   returns comes from that put, from a put that began after that one ended,
///   or from a put of unknown outcome (which may take effect at any time after
///   its invocation, e.g. when a request queued during a partition is delivered
///   late);
/// - the final reads, invoked after everything else, follow the same rule; a
///   final read that misses acknowledged writes makes them lost.
enum Checker {
    /// Checks `operations`; reads whose process starts with "final" are the final reads.
    static func check(_ operations: [CheckedOperation], into report: inout CheckReport) {
        var putsByKey: [String: [CheckedOperation]] = [:]
        var putByValue: [String: CheckedOperation] = [:]
        for operation in operations where operation.kind == .put {
            putsByKey[operation.key, default: []].append(operation)
            if let value = operation.written { putByValue[value] = operation }
            switch operation.outcome {
            case .ok: report.putsOK += 1
            case .failed: report.putsFailed += 1
            case .unknown, .pending: report.putsUnknown += 1
            }
        }
        report.operations = operations.count
        func latencies(_ kind: CheckedOperation.Kind) -> [Duration] {
            operations.compactMap { operation in
                guard operation.kind == kind, operation.outcome == .ok, !operation.process.hasPrefix("final"),
                      let completed = operation.completed else { return nil }
                return completed - operation.invoked
            }
        }
        let slowest = operations.filter { $0.outcome == .ok && !$0.process.hasPrefix("final") && $0.completed != nil }
            .max { $0.completed! - $0.invoked < $1.completed! - $1.invoked }
        if let slowest, let completed = slowest.completed {
            report.slowest = "\(slowest.kind.rawValue) #\(slowest.id) via node \(slowest.node) invoked at "
                + "\(CheckReport.seconds(slowest.invoked)), took \(CheckReport.seconds(completed - slowest.invoked))"
        }
        report.putLatency = CheckReport.percentiles(latencies(.put))
        report.getLatency = CheckReport.percentiles(latencies(.get))
        var lost: Set<Int> = []
        for read in operations where read.kind == .get {
            let final = read.process.hasPrefix("final")
            if final { report.finalReads += 1 }
            guard read.outcome == .ok, let readEnded = read.completed else {
                if final {
                    report.failedFinalReads.append("\(read.key) via node \(read.node): \(read.error ?? read.outcome.rawValue)")
                } else {
                    report.getsFailed += 1
                }
                continue
            }
            if !final { report.getsOK += 1 }
            let label = "\(read.process) #\(read.id) get \(read.key) via node \(read.node) at \(CheckReport.seconds(read.invoked))"
            var source: CheckedOperation?
            if let value = read.read {
                guard let put = putByValue[value], put.key == read.key else {
                    report.phantomReads.append("\(label) returned \(value), never written to this key")
                    continue
                }
                if put.outcome == .failed {
                    report.phantomReads.append("\(label) returned \(value) of put #\(put.id), which failed (\(put.error ?? ""))")
                    continue
                }
                if put.invoked > readEnded {
                    report.phantomReads.append("\(label) returned \(value) of put #\(put.id), invoked after the read ended")
                    continue
                }
                source = put
            }
            // Every put acknowledged before this read began must be visible:
            // the source must not be a put known to have ended before it began.
            for acknowledged in putsByKey[read.key] ?? [] where acknowledged.outcome == .ok {
                guard let ended = acknowledged.completed, ended < read.invoked else { continue }
                let missed: Bool
                if let source {
                    missed = source.id != acknowledged.id && source.outcome == .ok
                        && (source.completed.map { $0 < acknowledged.invoked } ?? false)
                } else {
                    missed = true
                }
                guard missed else { continue }
                let got = source.map { "\($0.written ?? "") of put #\($0.id)" } ?? "not found"
                let detail = "\(label) returned \(got), missing \(acknowledged.written ?? "") of put #\(acknowledged.id) "
                    + "acknowledged at \(CheckReport.seconds(ended))"
                if final {
                    if lost.insert(acknowledged.id).inserted { report.lostWrites.append(detail) }
                } else {
                    report.staleReads.append(detail)
                    break
                }
            }
        }
    }
}
