import Basics
import Foundation
import RPC
import RingProtocol

/// What the sender tells placement of its transfers (which relays it on the
/// `migration` topic): started, progress every `progressInterval`, failures (at
/// most one report in 5 s) and completion, which settles the arcs.
extension Migrator {
    /// Every row sent and confirmed: tell placement, which settles the arcs.
    func complete(_ transfer: Outgoing) {
        guard !transfer.completing else { return }
        transfer.completing = true
        var details = details(transfer)
        let elapsed = reactor.now - transfer.startedAt
        let seconds = elapsed.inSeconds
        details.rate = seconds > 0 ? UInt64(Double(transfer.confirmed.bytes) / seconds) : 0
        report("migration_completed", details) { [weak self, weak transfer] result in
            guard let self, let transfer, !transfer.cancelled else { return }
            switch result {
            case .success:
                finished.insert(transfer.id)
                outgoing.removeValue(forKey: transfer.id)
                try? store.engine.migrationCursors.remove(transfer: transfer.id)
                logCompleted(transfer)
            case .failure(let error):
                // Placement is away: say it again shortly.
                logger.notice("migration.report.failed", metadata: ["transfer.id": "\(transfer.id)", "rpc.error": "\(error)"])
                reactor.after(.seconds(1)) { [weak self, weak transfer] in
                    guard let self, let transfer else { return }
                    transfer.completing = false
                    complete(transfer)
                }
            }
        }
    }

    func logCompleted(_ transfer: Outgoing) {
        sentKeys += transfer.confirmed.keys
        let elapsed = reactor.now - transfer.startedAt
        let seconds = elapsed.inSeconds
        logger.info("migration.transfer.completed", metadata: [
            "transfer.id": "\(transfer.id)", "transfer.to": "\(transfer.to)", "transfer.keys": "\(transfer.confirmed.keys)",
            "transfer.bytes": "\(transfer.confirmed.bytes)", "transfer.seconds": "\(String(format: "%.3f", seconds))",
            "transfer.mb_per_s": "\(String(format: "%.2f", seconds > 0 ? Double(transfer.confirmed.bytes) / seconds / 1e6 : 0))",
        ])
    }

    func reportProgress() {
        let now = reactor.now
        for transfer in outgoing.values where !transfer.completing {
            let elapsed = now - transfer.lastReport.at
            let seconds = elapsed.inSeconds
            var details = details(transfer)
            details.rate = seconds > 0 ? UInt64(Double(max(0, transfer.confirmed.bytes - transfer.lastReport.bytes)) / seconds) : 0
            transfer.lastReport = (now, transfer.confirmed.bytes)
            report("migration_progress", details) { [weak self, weak transfer] result in
                guard let self, let transfer, case .success(let reply) = result, !reply.transferCurrent, !transfer.cancelled else { return }
                // Placement no longer has it: our plan is behind.
                logger.info("migration.transfer.stale", metadata: ["transfer.id": "\(transfer.id)"])
                refreshPlan()
            }
        }
    }

    func details(_ transfer: Outgoing) -> WireMigrationDetails {
        WireMigrationDetails.with {
            $0.transferID = transfer.id
            $0.planVersion = transfer.planVersion
            $0.from = address
            $0.to = transfer.to
            $0.arcs = UInt32(transfer.arcs.count)
            if let first = transfer.arcs.first {
                $0.arcStart = first.first
                $0.arcEnd = first.last
            }
            $0.keys = UInt64(transfer.confirmed.keys)
            $0.bytes = UInt64(transfer.confirmed.bytes)
            $0.expectedKeys = UInt64(transfer.expectedKeys)
            $0.expectedBytes = UInt64(transfer.expectedBytes)
        }
    }
}
