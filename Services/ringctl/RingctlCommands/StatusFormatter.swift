import Basics
import Foundation
import RingstoreClient

/// Renders health results for `ringctl status`.
enum StatusFormatter {
    static func table(_ results: [HealthResult], arcs: [String: Int] = [:]) -> String {
        var rows = [["SERVICE", "ADDRESS", "STATUS", "ROLE", "MEMBER", "KEYS", "BYTES", "HINTS", "ARCS", "MIGRATING", "VERSION", "UPTIME",
                     "PID", "LATENCY", "DETAIL"]]
        for result in results {
            let address = result.reply?.address ?? result.endpoint.replacingOccurrences(of: "tcp://", with: "")
            if let reply = result.reply {
                let isNode = result.role == "node"
                rows.append([result.role, address, reply.status, result.replicaRole ?? "-", result.memberState ?? "-",
                             reply.details["keys"] ?? "-", reply.details["bytes"].flatMap(UInt64.init).map(bytes) ?? "-",
                             reply.details["hints_pending"] ?? "-", isNode ? "\(arcs[address] ?? 0)" : "-",
                             reply.details["migrations_out"] ?? "-", reply.version,
                             uptime(reply.uptimeMillis), "\(reply.pid)", milliseconds(result.latency), leaderDetail(result)])
            } else {
                let error = result.error.map { "\($0.code.name): \($0.message)" } ?? "no answer"
                rows.append([result.role, address, "UNREACHABLE", result.replicaRole ?? "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-",
                             error])
            }
        }
        return Table.render(rows)
    }

    /// A follower's leader, as it knows it; empty for anything else.
    private static func leaderDetail(_ result: HealthResult) -> String {
        guard result.replicaRole == "follower", let leader = result.leader else { return "" }
        return leader.isEmpty ? "no leader elected" : "leader \(leader.replacingOccurrences(of: "tcp://", with: ""))"
    }

    /// The migration plan's transfers: who sends what to whom, how far along.
    static func migrations(_ plan: MigrationPlan) -> String {
        var rows = [["MIGRATION", "FROM", "TO", "ARCS", "KEYS", "BYTES", "DONE", "RATE", "STATE"]]
        for transfer in plan.transfers {
            rows.append(["\(transfer.id)", transfer.from, transfer.to, "\(transfer.arcs.count)",
                         "\(transfer.keys)/\(transfer.expectedKeys)", "\(bytes(transfer.bytes))/\(bytes(transfer.expectedBytes))",
                         percent(transfer), transfer.rate > 0 ? "\(bytes(transfer.rate))/s" : "-", state(transfer)])
        }
        let pending = plan.pendingArcs.reduce(UInt64(0)) { total, arc in total + arc.length }
        let share = Double(pending) / 4_294_967_296 * 100
        return Table.render(rows) + String(format: "plan %llu (ring epoch %llu): %d arcs moving, %.1f%% of the ring\n",
                                           plan.version, plan.ringEpoch, plan.pendingArcs.count, share)
    }

    static func percent(_ transfer: Transfer) -> String {
        if transfer.done { return "100%" }
        guard transfer.startedUnixMicros != 0 else { return "-" }
        guard transfer.expectedKeys > 0 else { return transfer.keys > 0 ? "100%" : "0%" }
        return String(format: "%.0f%%", min(100, Double(transfer.keys) / Double(transfer.expectedKeys) * 100))
    }

    static func state(_ transfer: Transfer) -> String {
        if transfer.done { return "done" }
        if !transfer.lastError.isEmpty { return "retrying: \(transfer.lastError)" }
        return transfer.startedUnixMicros == 0 ? "waiting" : "sending"
    }

    static func json(_ transfer: Transfer) -> String {
        JSONLine.encode([
            "migration": transfer.id, "from": transfer.from, "to": transfer.to, "arcs": transfer.arcs.count,
            "keys": transfer.keys, "expected_keys": transfer.expectedKeys, "bytes": transfer.bytes,
            "expected_bytes": transfer.expectedBytes, "rate_bytes_per_s": transfer.rate, "state": state(transfer),
            "done": transfer.done,
        ] as [String: Any])
    }

    static func json(_ result: HealthResult, arcs: [String: Int] = [:]) -> String {
        var object: [String: Any] = ["service": result.role, "endpoint": result.endpoint, "healthy": result.isHealthy]
        if let reply = result.reply {
            object["address"] = reply.address
            object["status"] = reply.status
            object["version"] = reply.version
            object["uptime_ms"] = reply.uptimeMillis
            object["pid"] = reply.pid
            object["latency_ms"] = result.latency.inMilliseconds
            object["details"] = reply.details
            if let member = result.memberState { object["member_state"] = member }
            if result.role == "node" { object["arcs"] = arcs[reply.address] ?? 0 }
        } else {
            object["status"] = "UNREACHABLE"
            object["error"] = result.error.map { "\($0.code.name): \($0.message)" } ?? "no answer"
        }
        // A placement or lock service replica: leader, follower or unreachable, and the leader it knows.
        if let role = result.replicaRole { object["role"] = role }
        if let leader = result.leader { object["leader"] = leader }
        return JSONLine.encode(object)
    }

    /// 1234567 → "1.2MB".
    static func bytes(_ count: UInt64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var value = Double(count)
        var unit = 0
        while value >= 1000 && unit < units.count - 1 {
            value /= 1000
            unit += 1
        }
        return unit == 0 ? "\(count)B" : String(format: "%.1f%@", value, units[unit])
    }

    static func uptime(_ millis: UInt64) -> String {
        let seconds = millis / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(seconds % 60)s" }
        return "\(seconds / 3600)h\(seconds % 3600 / 60)m"
    }

    static func milliseconds(_ duration: Duration) -> String {
        String(format: "%.1fms", duration.inMilliseconds)
    }
}
