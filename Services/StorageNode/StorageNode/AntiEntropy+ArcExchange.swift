import Foundation
import RPC
import Ring
import RingProtocol
import StorageEngine

/// Comparing one arc with one peer: the local digest at about `rowsPerLeaf`
/// rows per leaf against the peer's, then, for the leaves that differ, the rows
/// of both sides window by window, the newer of each key merged here (`pull`)
/// or sent there (`push`), every window paced by the pacer.
extension AntiEntropy {
    /// Compares `range` with `peer` and repairs the differing leaves both ways;
    /// `done` gets what was exchanged and, if it stopped early, why.
    func compare(_ range: ClosedRange<UInt32>, with peer: String, done: @escaping (Tally, String?) -> Void) {
        let arc = RingArc(first: range.lowerBound, last: range.upperBound)
        localDigest(arc) { [weak self] result in
            switch result {
            case .success(let local): self?.compare(arc, local, with: peer, done: done)
            case .failure(let error): done(Tally(), "local digest failed: \(error)")
            }
        }
    }

    /// Compares the local digest of `arc` with `peer`'s, then exchanges the rows of the leaves that differ.
    private func compare(_ arc: RingArc, _ local: ArcDigest, with peer: String, done: @escaping (Tally, String?) -> Void) {
        guard let client = peers.client(for: peer) else {
            done(Tally(), "no client for \(peer)")
            return
        }
        let leaves = local.leafHashes.count
        let request = WireArcDigestRequest.with {
            $0.arcFirst = arc.first
            $0.arcLast = arc.last
            $0.leaves = UInt32(leaves)
        }
        let timeout: Duration = settings.callTimeout
        client.call(StorageMethods.arcDigest, request, timeout: timeout) { [weak self] result in
            guard let self else { return }
            switch result {
            case .failure(let error):
                done(Tally(), "ArcDigest: \(error)")
            case .success(let reply):
                guard reply.leafHashes.count == leaves else {
                    done(Tally(), "ArcDigest answered \(reply.leafHashes.count) leaves, not \(leaves)")
                    return
                }
                if [UInt8](reply.root) == local.rootBytes {
                    done(Tally(), nil)
                    return
                }
                let differing = local.differingLeaves(from: reply.leafHashes)
                guard !differing.isEmpty else {
                    done(Tally(), nil)
                    return
                }
                logger.debug("anti_entropy.arc.differs", metadata: [
                    "peer.address": "\(peer)", "arc.first": "\(arc.first)", "arc.last": "\(arc.last)",
                    "anti_entropy.leaves": "\(leaves)", "anti_entropy.differing_leaves": "\(differing.count)",
                    "anti_entropy.rows_local": "\(local.rows)", "anti_entropy.rows_peer": "\(reply.rows)",
                ])
                let ranges = ArcDigest.ranges(ofLeaves: differing, of: arc, leaves: leaves)
                exchange(ranges, with: peer, client: client, tally: Tally(differing: true), done: done)
            }
        }
    }

    /// The local digest at about `rowsPerLeaf` rows per leaf.
    private func localDigest(_ arc: RingArc, done: @escaping (Result<ArcDigest, StorageError>) -> Void) {
        digest(arc, leaves: Self.fineLeaves) { [weak self] result in
            guard let self, case .success(let fine) = result else { return done(result) }
            let leaves = Self.leafCount(rows: fine.rows, rowsPerLeaf: settings.rowsPerLeaf)
            if leaves <= Self.fineLeaves { return done(.success(fine.folded(to: leaves))) }
            digest(arc, leaves: leaves, done: done)
        }
    }

    /// The power of two in 1...65536 that gives about `rowsPerLeaf` rows per leaf.
    static func leafCount(rows: Int, rowsPerLeaf: Int) -> Int {
        var leaves = 1
        while leaves * max(1, rowsPerLeaf) < rows && leaves < 65_536 { leaves *= 2 }
        return leaves
    }

    /// Repairs `ranges` window by window: the peer's rows, ours, then the newer of each side to the other.
    private func exchange(_ ranges: [RingArc], with peer: String, client: ReactorClient, tally: Tally,
                          done: @escaping (Tally, String?) -> Void) {
        guard !ranges.isEmpty else {
            done(tally, nil)
            return
        }
        if let wait = pacer.wait(at: reactor.now) {
            reactor.after(wait) { [weak self] in
                self?.exchange(ranges, with: peer, client: client, tally: tally, done: done)
            }
            return
        }
        let request = WireReadRangesRequest.with {
            $0.ranges = ranges.map { range in WireArcRange.with { $0.first = range.first; $0.last = range.last } }
            $0.limit = UInt32(settings.batchRows)
        }
        let timeout: Duration = settings.callTimeout
        client.call(StorageMethods.readRanges, request, timeout: timeout) { [weak self] result in
            guard let self else { return }
            let reply: WireReadRangesReply
            switch result {
            case .failure(let error):
                done(tally, "ReadRanges: \(error)")
                return
            case .success(let answer):
                reply = answer
            }
            var theirs: [VersionedRecord] = []
            theirs.reserveCapacity(reply.records.count)
            for wire in reply.records {
                guard let record = try? VersionedRecord(wire: wire) else {
                    done(tally, "ReadRanges answered a record with an empty key")
                    return
                }
                theirs.append(record)
            }
            let mine: (records: [VersionedRecord], more: Bool)
            do {
                mine = try store.engine.records(in: ranges, limit: settings.batchRows, byteLimit: settings.batchBytes)
            } catch {
                done(tally, "local read failed: \(error)")
                return
            }
            let window = Self.window(ranges, local: mine, remote: (theirs, reply.more))
            let (push, pull) = Self.reconcile(local: window.local, remote: window.remote)
            let bytes = push.byteSize + pull.byteSize
            pacer.charge(bytes, at: reactor.now)
            self.pull(pull) { [weak self] pulled, failure in
                guard let self else { return }
                var tally = tally
                tally.pulled += pulled
                if let failure {
                    done(tally, failure)
                    return
                }
                self.push(push, to: peer, from: 0) { [weak self] pushed, failure in
                    guard let self else { return }
                    tally.pushed += pushed
                    if let failure {
                        done(tally, failure)
                        return
                    }
                    exchange(window.rest, with: peer, client: client, tally: tally, done: done)
                }
            }
        }
    }

    /// Merges the peer's newer rows through the group commit; `done` gets how many were applied.
    private func pull(_ pulled: [VersionedRecord], done: @escaping (Int, String?) -> Void) {
        // Rows stamped too far ahead of our clock are dropped (and logged), not stored.
        let records = coordinator.clock.admitted(pulled, from: "an anti-entropy peer")
        guard !records.isEmpty else {
            done(0, nil)
            return
        }
        store.enqueue(records) { result in
            switch result {
            case .success(let applied): done(applied.count(where: \.wasApplied), nil)
            case .failure(let error): done(0, "local commit failed: \(error)")
            }
        }
    }

    /// Sends our newer rows to the peer in ReplicaWrite batches, one at a time;
    /// `done` gets how many the peer applied.
    private func push(_ records: [VersionedRecord], to peer: String, from start: Int, applied: Int = 0,
                      done: @escaping (Int, String?) -> Void) {
        guard start < records.count else {
            done(applied, nil)
            return
        }
        var end = start
        var bytes = 0
        while end < records.count {
            let size = records[end].byteSize + 32
            if end > start && bytes + size > settings.pushBytes { break }
            bytes += size
            end += 1
        }
        coordinator.send(Array(records[start..<end]), to: peer) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let reply):
                push(records, to: peer, from: end, applied: applied + reply.applied.count(where: { $0 }), done: done)
            case .failure(let error):
                done(applied, "ReplicaWrite: \(error)")
            }
        }
    }
}
