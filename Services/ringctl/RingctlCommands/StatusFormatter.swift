import Foundation
import RPC
import RingProtocol
import RingstoreClient

/// Renders health results for `ringctl status`.
enum StatusFormatter {
    static func table(_ results: [HealthResult]) -> String {
        var rows = [["SERVICE", "ADDRESS", "STATUS", "MEMBER", "KEYS", "BYTES", "HINTS", "VERSION", "UPTIME", "PID", "LATENCY", "DETAIL"]]
        for result in results {
            let address = result.reply?.address ?? result.endpoint.replacingOccurrences(of: "tcp://", with: "")
            if let reply = result.reply {
                rows.append([result.role, address, statusName(reply.status), result.memberState ?? "-",
                             reply.details["keys"] ?? "-", reply.details["bytes"].flatMap(UInt64.init).map(bytes) ?? "-",
                             reply.details["hints_pending"] ?? "-", reply.version,
                             uptime(reply.uptimeMillis), "\(reply.pid)", milliseconds(result.latency), ""])
            } else {
                let error = result.error.map { "\($0.code.name): \($0.message)" } ?? "no answer"
                rows.append([result.role, address, "UNREACHABLE", "-", "-", "-", "-", "-", "-", "-", "-", error])
            }
        }
        return Table.render(rows)
    }

    static func json(_ result: HealthResult) -> String {
        var object: [String: Any] = ["service": result.role, "endpoint": result.endpoint, "healthy": result.isHealthy]
        if let reply = result.reply {
            object["address"] = reply.address
            object["status"] = statusName(reply.status)
            object["version"] = reply.version
            object["uptime_ms"] = reply.uptimeMillis
            object["pid"] = reply.pid
            object["latency_ms"] = Double(result.latency.components.attoseconds) / 1e15 + Double(result.latency.components.seconds) * 1000
            object["details"] = reply.details
            if let member = result.memberState { object["member_state"] = member }
        } else {
            object["status"] = "UNREACHABLE"
            object["error"] = result.error.map { "\($0.code.name): \($0.message)" } ?? "no answer"
        }
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

    static func statusName(_ status: WireHealthReply.ServingStatus) -> String {
        switch status {
        case .serving: "SERVING"
        case .notServing: "NOT_SERVING"
        default: "UNKNOWN"
        }
    }

    static func uptime(_ millis: UInt64) -> String {
        let seconds = millis / 1000
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(seconds % 60)s" }
        return "\(seconds / 3600)h\(seconds % 3600 / 60)m"
    }

    static func milliseconds(_ duration: Duration) -> String {
        let ms = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.1fms", ms)
    }
}
