import Foundation
import RingstoreClient

/// Renders ``ClusterWatch`` items for `ringctl watch`: one line each, human or JSON.
enum EventFormatter {
    /// The fields of an event, flattened, in a stable order for the human form.
    static func fields(_ event: ClusterEvent) -> [(String, Any)] {
        var fields: [(String, Any)] = []
        if event.epoch > 0 { fields.append(("epoch", Int(event.epoch))) }
        fields.append(("seq", Int(event.sequence)))
        switch event.details {
        case .member(let member)?:
            fields += [("address", member.address), ("state", member.state), ("weight", member.weight)]
            if !member.previousState.isEmpty { fields.append(("previous_state", member.previousState)) }
        case .ring(let ring)?:
            fields += [("members", ring.members), ("weights", ring.weights), ("replicas", ring.replicas), ("density", ring.density)]
            if let plan = ring.plan {
                fields += [("plan", Int(plan.version)), ("arcs_moving", plan.pendingArcs.count),
                           ("transfers", plan.transfers.count(where: { !$0.done }))]
            }
        case .migration(let migration)?:
            if migration.transferID > 0 { fields.append(("transfer", Int(migration.transferID))) }
            fields += [("from", migration.from), ("to", migration.to)]
            if migration.arcs > 0 {
                fields.append(("arcs", migration.arcs))
            } else {
                fields.append(("arc", "[\(migration.arcStart),\(migration.arcEnd)]"))
            }
            fields += [("keys", Int(migration.keys)), ("bytes", Int(migration.bytes)),
                       ("expected_keys", Int(migration.expectedKeys)), ("expected_bytes", Int(migration.expectedBytes))]
            if migration.expectedKeys > 0 {
                fields.append(("percent", min(100, Int(migration.keys * 100 / migration.expectedKeys))))
            }
            if migration.rate > 0 { fields.append(("rate_bytes_per_s", Int(migration.rate))) }
            if !migration.reason.isEmpty { fields.append(("reason", migration.reason)) }
            if event.type == "migration_failed" { fields.append(("will_retry", migration.willRetry)) }
        case .lock(let lock)?:
            fields += [("name", lock.name), ("owner", lock.owner), ("token", Int(lock.token))]
            if lock.expiresUnixMicros > 0 { fields.append(("expires", Timestamp.iso8601(micros: lock.expiresUnixMicros))) }
            if !lock.reason.isEmpty { fields.append(("reason", lock.reason)) }
        case .repair(let repair)?:
            fields += [("node", repair.node), ("arcs_compared", repair.arcsCompared), ("arcs_differing", repair.arcsDiffering),
                       ("rows_pushed", Int(repair.rowsPushed)), ("rows_pulled", Int(repair.rowsPulled)),
                       ("duration_ms", Int(repair.durationMicros / 1000)), ("reason", repair.reason)]
        case nil:
            break
        }
        return fields
    }

    static func human(_ event: ClusterEvent) -> String {
        let details = fields(event).map { key, value in
            if let list = value as? [String] { return "\(key)=\(list.joined(separator: ","))" }
            if let list = value as? [Int] { return "\(key)=\(list.map(String.init).joined(separator: ","))" }
            return "\(key)=\(value)"
        }
        return ([Timestamp.iso8601(micros: event.timeUnixMicros), event.topic, event.type] + details).joined(separator: " ")
    }

    static func json(_ event: ClusterEvent) -> String {
        var object: [String: Any] = ["topic": event.topic, "type": event.type, "time": Timestamp.iso8601(micros: event.timeUnixMicros),
                                     "source": event.source, "epoch": Int(event.epoch)]
        for (key, value) in fields(event) { object[key] = value }
        return JSONLine.encode(object)
    }

    /// The snapshot as lines: one `member` line per member, then one `ring` line.
    static func snapshotLines(_ snapshot: ClusterSnapshot, json: Bool) -> [String] {
        let time = Timestamp.now
        var lines: [String] = []
        for member in snapshot.members {
            let state = member.state.rawValue
            if json {
                lines.append(JSONLine.encode(["topic": "membership", "type": "snapshot_member", "time": time, "epoch": Int(snapshot.epoch),
                                              "address": member.address, "state": state, "weight": member.weight,
                                              "state_epoch": Int(member.stateEpoch)]))
            } else {
                lines.append("\(time) membership snapshot_member epoch=\(snapshot.epoch) address=\(member.address) state=\(state) weight=\(member.weight)")
            }
        }
        let ring = snapshot.ring
        let members = ring.members.map(\.address)
        if json {
            lines.append(JSONLine.encode(["topic": "ring", "type": "snapshot_ring", "time": time, "epoch": Int(ring.ringEpoch),
                                          "members": members, "replicas": ring.replicas, "density": ring.density]))
        } else {
            lines.append("\(time) ring snapshot_ring epoch=\(ring.ringEpoch) members=\(members.joined(separator: ",")) replicas=\(ring.replicas) density=\(ring.density)")
        }
        return lines
    }

    /// One `snapshot_lock` line per lock held or waited for.
    static func lockSnapshotLines(_ snapshot: LockSnapshot, json: Bool) -> [String] {
        let time = Timestamp.now
        let seq = Int(snapshot.lastSequence["lock"] ?? 0)
        return snapshot.locks.map { info in
            if json {
                var object: [String: Any] = ["topic": "lock", "type": "snapshot_lock", "time": time, "seq": seq, "epoch": 0,
                                             "name": info.name, "last_token": Int(info.lastToken),
                                             "waiters": info.waiters.map(\.owner)]
                if let holder = info.holder {
                    object["owner"] = holder.owner
                    object["token"] = Int(holder.token)
                    object["expires"] = Timestamp.iso8601(micros: holder.expiresUnixMicros)
                }
                return JSONLine.encode(object)
            }
            var fields = ["seq=\(seq)", "name=\(info.name)"]
            if let holder = info.holder {
                fields += ["owner=\(holder.owner)", "token=\(holder.token)", "expires=\(Timestamp.iso8601(micros: holder.expiresUnixMicros))"]
            }
            fields += ["waiters=\(info.waiters.map(\.owner).joined(separator: ","))", "last_token=\(info.lastToken)"]
            return ([time, "lock", "snapshot_lock"] + fields).joined(separator: " ")
        }
    }
}
