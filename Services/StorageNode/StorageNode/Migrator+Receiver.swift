import Foundation
import RPC
import RingProtocol
import StorageEngine

/// The receiving end of migration: batches are merged through the group commit
/// and answered once durable, with the credit left over all senders; a batch of
/// a plan newer than this node's is refused until it caught up.
extension Migrator {
    func receive(_ context: RequestContext, _ request: WireMigrateBatchRequest, rpc: RPCServer) -> HandlerOutcome<WireMigrateBatchReply> {
        let known = view?.planVersion ?? 0
        if request.planVersion > known {
            refreshPlan()
            return .failure(.unavailable("this node has plan \(known), the batch is for plan \(request.planVersion); it is catching up"))
        }
        var records: [VersionedRecord] = []
        records.reserveCapacity(request.records.count)
        for wire in request.records {
            guard let record = try? VersionedRecord(wire: wire) else {
                return .failure(.invalidArgument("batch \(request.batch) has a record with an empty key"))
            }
            records.append(record)
        }
        // Rows stamped too far ahead of our clock are dropped (and logged), not stored.
        records = clock.admitted(records, from: "migration batch from \(request.from)")
        // Fencing tokens first: once a record is here, a stale fenced write of its key must be refused here too.
        do {
            try store.engine.remember(request.fences.map { StorageEngine.Fence(key: [UInt8]($0.key), name: $0.name, token: $0.token) })
        } catch {
            return .failure(.internalError("remembering fencing tokens failed: \(error)"))
        }
        receiving += 1
        store.enqueue(records) { [unowned self] result in
            receiving -= 1
            switch result {
            case .success(let applied):
                receivedKeys += records.count
                NodeMetrics.shared.migrated(received: records)
                rpc.reply(to: context, .success(WireMigrateBatchReply.with {
                    $0.credit = UInt32(max(1, settings.maxCredit - receiving))
                    $0.applied = UInt32(applied.count(where: \.wasApplied))
                }))
            case .failure(let error):
                rpc.fail(context, .internalError("commit failed: \(error)"))
            }
        }
        return .parked
    }
}
