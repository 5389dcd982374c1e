import Foundation
import RPC
import Ring
import RingProtocol
import StorageEngine

/// What anti-entropy serves its peers: the Merkle leaves of an arc (`ArcDigest`,
/// hashed a step per reactor turn) and the rows of ranges (`ReadRanges`, in
/// windows of `batchRows` rows and `batchBytes` bytes).
extension AntiEntropy {
    func digest(_ context: RequestContext, _ request: WireArcDigestRequest, rpc: RPCServer) -> HandlerOutcome<WireArcDigestReply> {
        let leaves = Int(request.leaves)
        guard (1...65_536).contains(leaves), leaves & (leaves - 1) == 0 else {
            return .failure(.invalidArgument("leaves \(request.leaves) must be a power of two in 1...65536"))
        }
        digest(RingArc(first: request.arcFirst, last: request.arcLast), leaves: leaves) { result in
            switch result {
            case .success(let digest):
                rpc.reply(to: context, .success(WireArcDigestReply.with {
                    $0.root = Data(digest.rootBytes)
                    $0.leafHashes = digest.leafHashes
                    $0.rows = UInt64(digest.rows)
                }))
            case .failure(let error):
                rpc.fail(context, .internalError("digest failed: \(error)"))
            }
        }
        return .parked
    }

    /// The digest of `arc` at `leaves` leaves, hashed a step per reactor turn (an arc can
    /// hold any number of rows); `done` runs on the reactor thread.
    func digest(_ arc: RingArc, leaves: Int, done: @escaping (Result<ArcDigest, StorageError>) -> Void) {
        var pass: ArcPass<DigestSoFar>
        do {
            pass = try .digest(arc, leaves: leaves)
        } catch {
            done(.failure(error))
            return
        }
        reactor.runInSteps { [weak self] in
            guard let self else { return true }
            do throws(StorageError) {
                try store.engine.advance(&pass, rows: ArcSteps.rowsPerRead)
            } catch {
                done(.failure(error))
                return true
            }
            guard let digest = pass.digest else { return false }
            done(.success(digest))
            return true
        }
    }

    func readRanges(_ request: WireReadRangesRequest) -> HandlerOutcome<WireReadRangesReply> {
        guard !request.ranges.isEmpty, request.ranges.count <= 65_536 else {
            return .failure(.invalidArgument("\(request.ranges.count) ranges; a read takes 1...65536"))
        }
        let limit = request.limit == 0 ? settings.batchRows : min(Int(request.limit), 10_000)
        do {
            let ranges = request.ranges.map { RingArc(first: $0.first, last: $0.last) }
            let (records, more) = try store.engine.records(in: ranges, limit: limit, byteLimit: settings.batchBytes)
            return .reply(WireReadRangesReply.with {
                $0.records = records.map(\.wire)
                $0.more = more
            })
        } catch {
            return .failure(.internalError("read failed: \(error)"))
        }
    }
}
