import Foundation
import RPC
import RingProtocol
import Synchronization
import Testing
import TestKit
import ZeroMQ

/// Anti-entropy and catch-up on real processes: a node killed while writes
/// went around it (some with hints, some without) reports itself not caught
/// up after its restart until it holds everything, and `ringctl repair`
/// repairs replicas on demand and reports what it did.
@Suite(.serialized, .timeLimit(.minutes(5))) struct RepairProcessTests {
    /// Writes `count` keys `prefix-i` straight to the given nodes (replica writes:
    /// no coordinator, no hints); returns key → value.
    func writeDirectly(_ cluster: LocalCluster, to nodes: [Int], count: Int, prefix: String) async throws -> [String: String] {
        var data: [String: String] = [:]
        var records: [WireRecord] = []
        for index in 0..<count {
            let key = "\(prefix)-\(index)"
            let value = String(repeating: "v", count: 90) + String(format: "%010d", index)
            data[key] = value
            records.append(WireRecord.with {
                $0.key = Data(key.utf8)
                $0.value = Data(value.utf8)
                $0.version = WireVersion.with { $0.timestamp = 1_000_000 + UInt64(index); $0.writer = 99 }
            })
        }
        for node in nodes {
            let client = try cluster.nodeClient(node)
            defer { client.close() }
            for start in stride(from: 0, to: records.count, by: 500) {
                let batch = Array(records[start..<min(start + 500, records.count)])
                _ = try await client.call(StorageMethods.replicaWrite, WireReplicaWriteRequest.with { $0.records = batch })
            }
        }
        return data
    }

    /// `ringctl members --json`: address → caught_up.
    func caughtUp(_ cluster: LocalCluster) async throws -> [String: Bool] {
        let run = try await ToolRun.run("ringctl", ["members", "--json"] + cluster.ringctlTarget())
        #expect(run.status == 0, "ringctl members: \(run.stderr)")
        var result: [String: Bool] = [:]
        for line in run.stdout.split(separator: "\n") {
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let address = object["address"] as? String, let caught = object["caught_up"] as? Bool
            else { continue }
            result[address] = caught
        }
        return result
    }

    /// Node `index` holds the value of every key itself.
    func expectHolds(_ cluster: LocalCluster, _ index: Int, _ data: [String: String]) async throws {
        let client = try cluster.nodeClient(index)
        defer { client.close() }
        var missing: [String] = []
        for (key, value) in data.sorted(by: { $0.key < $1.key }) {
            let reply = try await client.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = Data(key.utf8) })
            if !reply.found || reply.record.value != Data(value.utf8) { missing.append(key) }
        }
        #expect(missing.isEmpty, "node \(index) lacks \(missing.count) of \(data.count) keys, e.g. \(missing.prefix(3))")
    }

    @Test func aRestartedNodeIsCaughtUpOnlyOnceItHoldsWhatItMissed() async throws {
        let cluster = try LocalCluster(nodes: 3, suspectAfter: 1, downAfter: 2)
        cluster.nodeArguments = ["--anti-entropy-interval", "0"]
        try await cluster.startAndSettle()
        let addresses = (0..<3).map(cluster.nodeAddress)
        try await waitUntil("every member to be caught up", timeout: .seconds(20)) {
            try await caughtUp(cluster).values.filter { $0 }.count == 3
        }
        let events = try await RepairEventLog(cluster)
        defer { events.close() }

        _ = try await cluster.node(2).stop(signal: SIGKILL)
        try await cluster.waitForMembers([addresses[2]], state: .down)
        #expect(try await caughtUp(cluster)[addresses[2]] == false, "a down member is not caught up")
        // Writes node 2 missed: without hints (straight to the other two replicas) ...
        var data = try await writeDirectly(cluster, to: [0, 1], count: 2000, prefix: "direct")
        // ... and through coordinators, which keep hints for it.
        data.merge(try await cluster.load(100, prefix: "hinted")) { _, new in new }
        try await waitUntil("hints for node 2") {
            let pending = try await cluster.stats(0).hintsByTarget[addresses[2]] ?? 0
            return try await pending + (cluster.stats(1).hintsByTarget[addresses[2]] ?? 0) == 100
        }

        // Restarted with a slow repair rate (about 220 KB to pull at 50 KB/s), so
        // "not caught up" lasts long enough to be seen.
        cluster.nodeArguments = ["--anti-entropy-interval", "0", "--anti-entropy-rate-mb", "0.05"]
        try await cluster.startNode(2)
        #expect(try await caughtUp(cluster)[addresses[2]] == false)
        let health = try await {
            let client = try cluster.nodeClient(2)
            defer { client.close() }
            return try await client.call(StorageMethods.health, WireHealthRequest())
        }()
        #expect(health.details["caught_up"] == "false")
        try await waitUntil("node 2 to be caught up", timeout: .seconds(30), interval: .milliseconds(200)) {
            try await caughtUp(cluster)[addresses[2]] == true
        }
        // Caught up means: the hints were delivered and the catch-up pass pulled the rest.
        #expect(try await cluster.stats(0).hintsByTarget[addresses[2]] ?? 0 == 0)
        #expect(try await cluster.stats(1).hintsByTarget[addresses[2]] ?? 0 == 0)
        try await expectHolds(cluster, 2, data)
        try await waitUntil("the catch-up pass of node 2 to be published") {
            events.all.contains { $0.node == addresses[2] && $0.reason == "catch-up" }
        }
        let pass = try #require(events.all.last { $0.node == addresses[2] && $0.reason == "catch-up" })
        #expect(pass.rowsPulled >= 2000, "the catch-up pass pulled \(pass.rowsPulled) rows")
        #expect(pass.arcsDiffering > 0 && pass.arcsCompared >= pass.arcsDiffering)
        #expect(try await caughtUp(cluster).values.allSatisfy { $0 })
        try await cluster.stop()
    }

    @Test func ringctlRepairRepairsOnDemandAndReports() async throws {
        let cluster = try LocalCluster(nodes: 3)
        cluster.nodeArguments = ["--anti-entropy-interval", "0", "--anti-entropy-rate-mb", "0"]
        try await cluster.startAndSettle()
        let addresses = (0..<3).map(cluster.nodeAddress)
        try await waitUntil("every member to be caught up", timeout: .seconds(20)) {
            try await caughtUp(cluster).values.filter { $0 }.count == 3
        }
        // Keys only node 1 has, and keys only node 2 has.
        var data = try await writeDirectly(cluster, to: [1], count: 300, prefix: "one")
        data.merge(try await writeDirectly(cluster, to: [2], count: 100, prefix: "two")) { _, new in new }

        let one = try await ToolRun.run("ringctl", ["repair", addresses[0], "--json"] + cluster.ringctlTarget())
        #expect(one.status == 0, "ringctl repair: \(one.stderr)")
        let line = try #require(one.stdout.split(separator: "\n").first)
        let figures = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(figures["node"] as? String == addresses[0])
        // Node 0 takes all 400; node 1 gets node 2's 100 and node 2 gets node 1's 300.
        #expect(figures["rows_pulled"] as? Int == 400)
        #expect(figures["rows_pushed"] as? Int == 400)
        #expect((figures["arcs_differing"] as? Int ?? 0) > 0)
        #expect((figures["arcs_compared"] as? Int ?? 0) >= (figures["arcs_differing"] as? Int ?? 0))
        #expect(figures["duration_ms"] != nil)
        for index in 0..<3 { try await expectHolds(cluster, index, data) }

        // Every member in turn: a table, nothing left to repair.
        let all = try await ToolRun.run("ringctl", ["repair"] + cluster.ringctlTarget())
        #expect(all.status == 0, "ringctl repair: \(all.stderr)")
        let lines = all.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("NODE") == true)
        #expect(lines.count == 4, "\(all.stdout)")
        for address in addresses {
            let row = try #require(lines.first { $0.hasPrefix(address) }).split(separator: " ", omittingEmptySubsequences: true)
            #expect(row.count == 6 && row[2] == "0" && row[3] == "0" && row[4] == "0", "\(row)")
        }

        // `ringctl members` shows the column.
        let members = try await ToolRun.run("ringctl", ["members"] + cluster.ringctlTarget())
        #expect(members.stdout.split(separator: "\n").first?.contains("CAUGHT_UP") == true)
        for address in addresses {
            #expect(members.stdout.split(separator: "\n").contains { $0.hasPrefix(address) && $0.contains(" yes ") })
        }

        // A node that is not there: an error on stderr and a non-zero exit, quickly.
        let nowhere = "127.0.0.1:\(FreePort.allocate())"
        let failed = try await ToolRun.run("ringctl", ["repair", nowhere, "--timeout", "1"] + cluster.ringctlTarget(),
                                           timeout: .seconds(20))
        #expect(failed.status != 0)
        #expect(failed.stderr.contains("cannot repair \(nowhere)"), "\(failed.stderr)")
        #expect(failed.stdout.isEmpty)
        let bad = try await ToolRun.run("ringctl", ["repair", "not-an-address"] + cluster.ringctlCredentials())
        #expect(bad.status != 0)
        try await cluster.stop()
    }
}

/// The `anti_entropy` events placement publishes, from a subscription made live
/// with probe reports before the test acts.
final class RepairEventLog: Sendable {
    private let context: ZMQContext
    private let subscription: EventSubscription
    private let received = RepairDetailsList()

    init(_ cluster: LocalCluster) async throws {
        context = try ZMQContext()
        subscription = try cluster.subscribe(cluster.placementEvents, topics: ["migration"], context: context)
        let stream = subscription.events
        let received = self.received
        Task {
            for await event in stream where event.event.type == "anti_entropy" {
                if case .repair(let details)? = event.event.details { received.append(details) }
            }
        }
        let client = try cluster.rpc(cluster.placementEndpoint, caller: "repair-events")
        defer { client.close() }
        let probe = WireReportRepairRequest.with { $0.details.node = "probe"; $0.details.reason = "probe" }
        try await waitUntil("the event subscription to be live", timeout: .seconds(20), interval: .milliseconds(50)) {
            _ = try await client.call(PlacementMethods.reportRepair, probe)
            return received.all.contains { $0.node == "probe" }
        }
    }

    var all: [WireRepairDetails] { received.all.filter { $0.node != "probe" } }

    func close() { subscription.close() }
}

final class RepairDetailsList: Sendable {
    private let list = Mutex<[WireRepairDetails]>([])
    func append(_ details: WireRepairDetails) { list.withLock { $0.append(details) } }
    var all: [WireRepairDetails] { list.withLock { $0 } }
}
