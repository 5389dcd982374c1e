import CoreMetrics
import StorageEngine

/// The storage node's own metrics (the RPC layer counts requests): rows and
/// bytes migrated each way, rows anti-entropy repaired each way; the gauges
/// (keys, bytes, hints, transfers in flight) are read at each scrape.
final class NodeMetrics: Sendable {
    static let shared = NodeMetrics()

    let migrationRowsSent = Counter(label: "ringstore_migration_rows_total", dimensions: [("direction", "sent")])
    let migrationRowsReceived = Counter(label: "ringstore_migration_rows_total", dimensions: [("direction", "received")])
    let migrationBytesSent = Counter(label: "ringstore_migration_bytes_total", dimensions: [("direction", "sent")])
    let migrationBytesReceived = Counter(label: "ringstore_migration_bytes_total", dimensions: [("direction", "received")])
    let antiEntropyRowsPushed = Counter(label: "ringstore_anti_entropy_rows_total", dimensions: [("direction", "pushed")])
    let antiEntropyRowsPulled = Counter(label: "ringstore_anti_entropy_rows_total", dimensions: [("direction", "pulled")])
    let keys = Gauge(label: "ringstore_node_keys")
    let tombstones = Gauge(label: "ringstore_node_tombstones")
    let bytes = Gauge(label: "ringstore_node_bytes")
    let hintsPending = Gauge(label: "ringstore_node_hints_pending")
    let migrationsInFlight = Gauge(label: "ringstore_migrations_in_flight")

    func migrated(sent records: [VersionedRecord]) {
        migrationRowsSent.increment(by: records.count)
        migrationBytesSent.increment(by: records.byteSize)
    }

    func migrated(received records: [VersionedRecord]) {
        migrationRowsReceived.increment(by: records.count)
        migrationBytesReceived.increment(by: records.byteSize)
    }
}
