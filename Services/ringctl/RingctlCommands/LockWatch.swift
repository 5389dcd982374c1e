import Foundation
import RPC
import RingProtocol

/// The lock service's side of `ringctl watch`: its snapshot (the clone
/// pattern for the `lock` topic) and how it is shown.
extension EventFormatter {
    /// One `snapshot_lock` line per lock held or waited for.
    static func lockSnapshotLines(_ snapshot: WireLockSnapshotReply, json: Bool) -> [String] {
        let time = Timestamp.iso8601(micros: Int64(Date().timeIntervalSince1970 * 1_000_000))
        let seq = Int(snapshot.lastSeq["lock"] ?? 0)
        return snapshot.locks.map { info in
            let holder = info.hasHolder ? info.holder : nil
            if json {
                var object: [String: Any] = ["topic": "lock", "type": "snapshot_lock", "time": time, "seq": seq, "epoch": 0,
                                             "name": info.name, "last_token": Int(info.lastToken),
                                             "waiters": info.waiters.map(\.owner)]
                if let holder {
                    object["owner"] = holder.owner
                    object["token"] = Int(holder.token)
                    object["expires"] = Timestamp.iso8601(micros: holder.expiresUnixMicros)
                }
                return JSONLine.encode(object)
            }
            var fields = ["seq=\(seq)", "name=\(info.name)"]
            if let holder {
                fields += ["owner=\(holder.owner)", "token=\(holder.token)", "expires=\(Timestamp.iso8601(micros: holder.expiresUnixMicros))"]
            }
            fields += ["waiters=\(info.waiters.map(\.owner).joined(separator: ","))", "last_token=\(info.lastToken)"]
            return ([time, "lock", "snapshot_lock"] + fields).joined(separator: " ")
        }
    }
}

extension WatchCommand {
    /// The lock service's snapshot, or nil when it does not answer.
    func lockSnapshot(_ client: RPCClient) async -> WireLockSnapshotReply? {
        try? await client.call(LockMethods.snapshot, WireLockSnapshotRequest(), options: CallOptions(timeout: cluster.callTimeout))
    }
}
