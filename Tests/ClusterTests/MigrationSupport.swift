import Foundation
import RPC
import Ring
import RingProtocol
import Testing
import TestKit

/// Loading, checking and waiting helpers for the migration tests.
extension LocalCluster {
    /// Placement's ring and migration plan.
    func ringInfo() async throws -> WireRingInfo {
        let client = try placementRPC()
        defer { client.close() }
        return try await client.call(PlacementMethods.getRing, WireGetRingRequest()).ring
    }

    /// Writes `count` keys `prefix-i` with 100-byte values through `ringctl put --stdin`; every line must say OK.
    @discardableResult
    func load(_ count: Int, prefix: String) async throws -> [String: String] {
        var data: [String: String] = [:]
        var input = ""
        input.reserveCapacity(count * 120)
        for index in 0..<count {
            let key = "\(prefix)-\(index)"
            let value = String(repeating: Character(UnicodeScalar(UInt8(97 + index % 26))), count: 90) + String(format: "%010d", index)
            data[key] = value
            input += "\(key)\t\(value)\n"
        }
        let run = try await ToolRun.run("ringctl", ["put", "--stdin"] + ringctlTarget(), stdin: input, timeout: .seconds(300))
        #expect(run.status == 0, "put --stdin: \(run.stderr.prefix(500))")
        let failed = run.stdout.split(separator: "\n").filter { !$0.hasSuffix("\tOK") }
        #expect(failed.isEmpty, "\(failed.count) puts failed, e.g. \(failed.prefix(3))")
        return data
    }

    /// Reads every key back with `ringctl get --stdin`; returns the keys whose value differs or is missing.
    func mismatches(_ data: [String: String]) async throws -> [String] {
        let keys = data.keys.sorted()
        let run = try await ToolRun.run("ringctl", ["get", "--stdin"] + ringctlTarget(),
                                        stdin: keys.joined(separator: "\n") + "\n", timeout: .seconds(300))
        var got: [String: String] = [:]
        for line in run.stdout.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            if parts.count == 2 { got[parts[0]] = parts[1] }
        }
        return keys.filter { got[$0] != data[$0] }
    }

    /// Waits until placement's plan has nothing pending and every running node
    /// follows that plan and swept what it no longer owns.
    func waitUntilSettled(nodes indices: [Int], timeout: Duration = .seconds(120)) async throws {
        try await waitUntil("the migration plan to settle", timeout: timeout, interval: .milliseconds(200)) {
            let info = try await ringInfo()
            return info.plan.pending.isEmpty
        }
        let version = try await ringInfo().plan.version
        for index in indices {
            let client = try nodeClient(index)
            defer { client.close() }
            try await waitUntil("node \(index) to follow plan \(version)", timeout: timeout) {
                let health = try await client.call(StorageMethods.health, WireHealthRequest())
                return UInt64(health.details["plan_version"] ?? "") ?? 0 >= version
            }
        }
    }

    /// How many of `keys` each ring member must hold (the members whose preference list has them).
    func expectedHoldings(_ keys: [String], members: [String], replicas: Int = 3) throws -> [String: Int] {
        let ring = try HashRing(members: members.map { try RingMember(address: $0) })
        var counts: [String: Int] = [:]
        for key in keys {
            for member in try ring.preferenceList(forKey: key, replicas: replicas) {
                counts[member.address, default: 0] += 1
            }
        }
        return counts
    }

    /// Waits until node `index` holds exactly `expected` live keys.
    func waitForHolding(_ index: Int, _ expected: Int, timeout: Duration = .seconds(60)) async throws {
        var last: UInt64 = 0
        do {
            try await waitUntil("node \(index) to hold \(expected) keys", timeout: timeout, interval: .milliseconds(200)) {
                last = try await stats(index).liveKeys
                return last == UInt64(expected)
            }
        } catch {
            Issue.record("node \(index) holds \(last) keys, expected \(expected)")
            throw error
        }
    }

    /// Whether node `index` holds `key` itself (a replica read, no coordination).
    func holds(_ index: Int, _ key: String, client: RPCClient) async throws -> Bool {
        try await client.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = Data(key.utf8) }).found
    }
}
