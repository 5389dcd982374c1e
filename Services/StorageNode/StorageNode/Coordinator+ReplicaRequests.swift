import Foundation
import RPC
import RingProtocol
import StorageEngine

/// The replica side: what a node does with other coordinators' replica writes and reads.
extension Coordinator {
    func replicaWrite(_ context: RequestContext, _ request: WireReplicaWriteRequest) -> HandlerOutcome<WireReplicaWriteReply> {
        var records: [VersionedRecord] = []
        records.reserveCapacity(request.records.count)
        for wire in request.records {
            if let problem = validate(key: [UInt8](wire.key), value: wire.tombstone ? nil : [UInt8](wire.value)) {
                return .failure(problem)
            }
            guard let record = try? VersionedRecord(wire: wire) else { return .failure(.invalidArgument("record with an empty key")) }
            records.append(record)
        }
        if let ahead = clock.firstRefused(records, from: "ReplicaWrite from \(context.caller)") {
            return .failure(.invalidArgument("a record's version is too far ahead: \(clock.refusal(ahead.version.timestamp))"))
        }
        if !request.hintFor.isEmpty {
            // We are a stand-in: keep the records as hints for their replica.
            guard request.hintFor != address else { return .failure(.invalidArgument("a node cannot hold hints for itself")) }
            store.enqueueHints(records, for: request.hintFor) { [unowned self] result in
                switch result {
                case .success: rpc?.reply(to: context, .success(WireReplicaWriteReply.with { $0.applied = records.map { _ in true } }))
                case .failure(let error): rpc?.fail(context, .internalError("hint commit failed: \(error)"))
                }
            }
            return .parked
        }
        // A sender on an older plan may still route to this node for arcs it
        // no longer keeps (and may have swept already): those records are not
        // stored, or they would stay here for good; the sender hears it.
        let myPlan = ringView()?.planVersion ?? 0
        let notReplica = records.map { !keepsLocally($0, routedBy: request.planVersion) }
        let kept = zip(records, notReplica).filter { !$0.1 }.map(\.0)
        if kept.count < records.count {
            logger.debug("node.replica_write.not_replica", metadata: [
                "records.refused": "\(records.count - kept.count)", "plan.sender": "\(request.planVersion)", "plan.version": "\(myPlan)",
            ])
        }
        store.enqueue(kept) { [unowned self] result in
            switch result {
            case .success(let results):
                var applied = results.makeIterator()
                let merged: [ApplyResult?] = notReplica.map { $0 ? nil : applied.next() }
                rpc?.reply(to: context, .success(WireReplicaWriteReply.with {
                    $0.applied = merged.map { $0?.wasApplied ?? false }
                    $0.refusedBelow = merged.map { result in
                        if case .refused(let highest)? = result { highest } else { 0 }
                    }
                    $0.notReplica = notReplica
                    $0.planVersion = myPlan
                }))
            case .failure(let error):
                rpc?.fail(context, .internalError("commit failed: \(error)"))
            }
        }
        return .parked
    }

    func replicaRead(_ request: WireReplicaReadRequest) -> HandlerOutcome<WireReplicaReadReply> {
        if !request.keys.isEmpty {
            // A coordinator's batch: every key checked, then read in one database access.
            let keys = request.keys.map { [UInt8]($0) }
            guard keys.count <= ReplicaOutbox.readBatchKeys else {
                return .failure(.invalidArgument("\(keys.count) keys in one ReplicaRead; the limit is \(ReplicaOutbox.readBatchKeys)"))
            }
            for key in keys {
                if let problem = validate(key: key, value: nil) { return .failure(problem) }
            }
            do {
                let records = try store.engine.get(keys: keys)
                return .reply(WireReplicaReadReply.with {
                    $0.answers = records.map { record in
                        WireReplicaReadAnswer.with {
                            if let record {
                                $0.found = true
                                $0.record = record.wire
                            }
                        }
                    }
                })
            } catch {
                return .failure(.internalError("read failed: \(error)"))
            }
        }
        let key = [UInt8](request.key)
        if let problem = validate(key: key, value: nil) { return .failure(problem) }
        do {
            let record = try store.engine.get(key: key)
            return .reply(WireReplicaReadReply.with {
                if let record {
                    $0.found = true
                    $0.record = record.wire
                }
            })
        } catch {
            return .failure(.internalError("read failed: \(error)"))
        }
    }
}
