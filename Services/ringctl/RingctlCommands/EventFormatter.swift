import Foundation
import RingProtocol

/// Renders events for `ringctl watch`: one line each, human or JSON.
enum EventFormatter {
    /// The fields of an event, flattened, in a stable order for the human form.
    static func fields(_ event: WireEvent) -> [(String, Any)] {
        var fields: [(String, Any)] = []
        if event.epoch > 0 { fields.append(("epoch", Int(event.epoch))) }
        fields.append(("seq", Int(event.seq)))
        switch event.details {
        case .member(let member)?:
            fields += [("address", member.address), ("state", member.state), ("weight", Int(member.weight))]
            if !member.previousState.isEmpty { fields.append(("previous_state", member.previousState)) }
        case .ring(let ring)?:
            fields += [("members", ring.members), ("weights", ring.weights.map { Int($0) }),
                       ("replicas", Int(ring.replicas)), ("density", Int(ring.density))]
            if ring.hasPlan {
                fields += [("plan", Int(ring.plan.version)), ("arcs_moving", ring.plan.pending.count),
                           ("transfers", ring.plan.transfers.count(where: { !$0.done }))]
            }
        case .migration(let migration)?:
            if migration.transferID > 0 { fields.append(("transfer", Int(migration.transferID))) }
            fields += [("from", migration.from), ("to", migration.to)]
            if migration.arcs > 0 {
                fields.append(("arcs", Int(migration.arcs)))
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
            fields += [("node", repair.node), ("arcs_compared", Int(repair.arcsCompared)), ("arcs_differing", Int(repair.arcsDiffering)),
                       ("rows_pushed", Int(repair.rowsPushed)), ("rows_pulled", Int(repair.rowsPulled)),
                       ("duration_ms", Int(repair.durationMicros / 1000)), ("reason", repair.reason)]
        case nil:
            break
        }
        return fields
    }

    static func human(topic: String, _ event: WireEvent) -> String {
        let details = fields(event).map { key, value in
            if let list = value as? [String] { return "\(key)=\(list.joined(separator: ","))" }
            if let list = value as? [Int] { return "\(key)=\(list.map(String.init).joined(separator: ","))" }
            return "\(key)=\(value)"
        }
        return ([Timestamp.iso8601(micros: event.timeUnixMicros), topic, event.type] + details).joined(separator: " ")
    }

    static func json(topic: String, _ event: WireEvent) -> String {
        var object: [String: Any] = ["topic": topic, "type": event.type, "time": Timestamp.iso8601(micros: event.timeUnixMicros),
                                     "source": event.source, "epoch": Int(event.epoch)]
        for (key, value) in fields(event) { object[key] = value }
        return JSONLine.encode(object)
    }

    /// The snapshot as lines: one `member` line per member, then one `ring` line.
    static func snapshotLines(_ snapshot: WireSnapshotReply, json: Bool) -> [String] {
        let time = Timestamp.iso8601(micros: Int64(Date().timeIntervalSince1970 * 1_000_000))
        var lines: [String] = []
        for member in snapshot.members {
            let state = member.state.name
            if json {
                lines.append(JSONLine.encode(["topic": "membership", "type": "snapshot_member", "time": time, "epoch": Int(snapshot.epoch),
                                              "address": member.address, "state": state, "weight": Int(member.weight),
                                              "state_epoch": Int(member.stateEpoch)]))
            } else {
                lines.append("\(time) membership snapshot_member epoch=\(snapshot.epoch) address=\(member.address) state=\(state) weight=\(member.weight)")
            }
        }
        let ring = snapshot.ring
        if json {
            lines.append(JSONLine.encode(["topic": "ring", "type": "snapshot_ring", "time": time, "epoch": Int(ring.ringEpoch),
                                          "members": ring.members.map(\.address), "replicas": Int(ring.replicas), "density": Int(ring.density)]))
        } else {
            lines.append("\(time) ring snapshot_ring epoch=\(ring.ringEpoch) members=\(ring.members.map(\.address).joined(separator: ",")) replicas=\(ring.replicas) density=\(ring.density)")
        }
        return lines
    }
}
