import Ring
import StorageEngine

/// The pure parts of an exchange: which rows of a window both sides returned
/// completely, and which of them go which way.
extension AntiEntropy {
    /// The part of a window both sides returned completely: each side's rows up to the
    /// earlier of their cuts (a side cut short stops after its last row's position), and
    /// the ranges left after it.
    static func window(_ ranges: [RingArc], local: (records: [VersionedRecord], more: Bool),
                       remote: (records: [VersionedRecord], more: Bool))
        -> (local: [VersionedRecord], remote: [VersionedRecord], rest: [RingArc]) {
        /// Where a position lies along the ranges: (range index, offset in the range).
        func place(_ position: UInt32) -> (Int, UInt32)? {
            guard let index = ranges.firstIndex(where: { $0.contains(position) }) else { return nil }
            return (index, position &- ranges[index].first)
        }
        var end: (Int, UInt32)?
        for side in [local, remote] where side.more {
            guard let last = side.records.last, let cut = place(last.position) else { continue }
            if let current = end {
                if cut < current { end = cut }
            } else {
                end = cut
            }
        }
        guard let end else { return (local.records, remote.records, []) }
        func within(_ record: VersionedRecord) -> Bool {
            guard let at = place(record.position) else { return false }
            return at <= end
        }
        let range = ranges[end.0]
        let endPosition = range.first &+ end.1
        var rest: [RingArc] = endPosition == range.last ? [] : [RingArc(first: endPosition &+ 1, last: range.last)]
        rest += ranges[(end.0 + 1)...]
        return (local.records.filter(within), remote.records.filter(within), rest)
    }

    /// What to send and what to take: our rows that are newer than the peer's or that it
    /// lacks, and its rows that are newer than ours or that we lack.
    static func reconcile(local: [VersionedRecord], remote: [VersionedRecord]) -> (push: [VersionedRecord], pull: [VersionedRecord]) {
        var theirs: [[UInt8]: VersionedRecord] = [:]
        for record in remote {
            theirs[record.key] = theirs[record.key].map { $0.merged(with: record) } ?? record
        }
        var ours: Set<[UInt8]> = []
        var push: [VersionedRecord] = []
        var pull: [VersionedRecord] = []
        for mine in local {
            ours.insert(mine.key)
            guard let other = theirs[mine.key] else {
                push.append(mine)
                continue
            }
            if other.isSuperseded(by: mine) {
                push.append(mine)
            } else if mine.isSuperseded(by: other) {
                pull.append(other)
            }
        }
        for record in remote where !ours.contains(record.key) {
            if theirs[record.key] == record {
                pull.append(record)
                ours.insert(record.key)
            }
        }
        return (push, pull)
    }
}
