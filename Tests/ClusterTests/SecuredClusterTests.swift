import Foundation
import RPC
import RingProtocol
import Testing
import TestKit
import ZeroMQ

/// Placement, the lock service and nodes with CURVE on every socket: node
/// traffic (joins, heartbeats, events, replica writes) works over it, each
/// role does what it may and no more, and nothing answers without a listed key.
@Suite(.serialized) struct SecuredClusterTests {
    @Test func aSecuredClusterServesEachRoleWhatItMayAndNothingWithoutAKey() async throws {
        let cluster = try LocalCluster(nodes: 2, secured: true)
        cluster.placementArguments = ["--replicas", "2"]
        try await cluster.startAndSettle()
        let keys = try #require(cluster.keys)
        let endpoints = ["--placement", cluster.placementEndpoint, "--locks", cluster.lockEndpoint, "--timeout", "2"]

        // N=2, W=2: every write goes node to node over CURVE as well.
        let put = try await ToolRun.run("ringctl", ["put", "k", "v", "--w", "2"] + endpoints + keys.ringctl(as: "admin"))
        #expect(put.status == 0, "admin put: \(put.stderr)")
        let get = try await ToolRun.run("ringctl", ["get", "k", "--r", "2"] + endpoints + keys.ringctl(as: "client"))
        #expect(get.status == 0 && get.stdout == "v\n", "client get: \(get.stderr)")
        let lock = try await ToolRun.run("ringctl", ["lock", "acquire", "jobs", "--ttl", "30", "--owner", "app"] + endpoints + keys.ringctl(as: "client"))
        #expect(lock.status == 0, "client lock: \(lock.stderr)")
        // Another session that knows the owner id and the token (both public) cannot release it; an admin can.
        let token = lock.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let stolen = try await ToolRun.run("ringctl", ["lock", "release", "jobs", "--token", token, "--owner", "app"]
                                           + endpoints + keys.ringctl(as: "other-client"))
        #expect(stolen.status != 0 && stolen.stderr.contains("PERMISSION_DENIED"), "stolen token: \(stolen.stderr)")
        let adminRelease = try await ToolRun.run("ringctl", ["lock", "release", "jobs", "--token", token, "--owner", "app"]
                                                 + endpoints + keys.ringctl(as: "admin"))
        #expect(adminRelease.status == 0, "admin release: \(adminRelease.stderr)")

        // A client may not change the membership nor repair; an admin may.
        let remove = try await ToolRun.run("ringctl", ["remove", cluster.nodeAddress(1)] + endpoints + keys.ringctl(as: "client"))
        #expect(remove.status != 0 && remove.stderr.contains("PERMISSION_DENIED"), "client remove: \(remove.stderr)")
        let repair = try await ToolRun.run("ringctl", ["repair", cluster.nodeAddress(0)] + endpoints + keys.ringctl(as: "client"))
        #expect(repair.status != 0 && repair.stderr.contains("PERMISSION_DENIED"), "client repair: \(repair.stderr)")
        let adminRepair = try await ToolRun.run("ringctl", ["repair", cluster.nodeAddress(0)] + endpoints + keys.ringctl(as: "admin"))
        #expect(adminRepair.status == 0, "admin repair: \(adminRepair.stderr)")

        // A client key cannot write to a replica directly, skipping the coordinator.
        let context = try ZMQContext()
        let direct = try RPCClient(context: context, endpoint: cluster.nodeEndpoints[0], caller: "sneaky",
                                   security: ClientSecurity(keys: keys.client, serverKey: keys.server.publicKey))
        do {
            _ = try await direct.call(StorageMethods.replicaWrite, WireReplicaWriteRequest(), options: CallOptions(timeout: .seconds(2)))
            Issue.record("a client key wrote to a replica")
        } catch {
            #expect(error.code == .permissionDenied, "\(error)")
        }

        // Nor join the ring, nor report a migration done (which makes old replicas sweep).
        let placement = try RPCClient(context: context, endpoint: cluster.placementEndpoint, caller: "sneaky",
                                      security: ClientSecurity(keys: keys.client, serverKey: keys.server.publicKey))
        for attempt in [{ _ = try await placement.call(PlacementMethods.join, WireJoinRequest.with { $0.address = "10.0.0.9:7501" }) },
                        { _ = try await placement.call(PlacementMethods.reportMigration, WireReportMigrationRequest()) }] {
            do {
                try await attempt()
                Issue.record("a client key reached a node-only placement method")
            } catch {
                #expect((error as? RPCError)?.code == .permissionDenied, "\(error)")
            }
        }
        placement.close()

        // Status details (keys, bytes, request counters) are for admins; a
        // client sees that the node serves and its member state.
        let asClient = try await direct.call(StorageMethods.health, WireHealthRequest(), options: CallOptions(timeout: .seconds(2)))
        #expect(asClient.status == .serving && Set(asClient.details.keys) == ["member_state"], "\(asClient.details)")
        let admin = try RPCClient(context: context, endpoint: cluster.nodeEndpoints[0], caller: "admin", security: keys.adminSecurity)
        let asAdmin = try await admin.call(StorageMethods.health, WireHealthRequest(), options: CallOptions(timeout: .seconds(2)))
        #expect(asAdmin.details["keys"] != nil && asAdmin.details["requests_served"] != nil, "\(asAdmin.details)")
        admin.close()
        direct.close()
        context.shutdown()

        // No key, or one that is not listed: no answer at all.
        for credentials in [["--insecure"], keys.ringctl(as: "stranger")] {
            let refused = try await ToolRun.run("ringctl", ["get", "k", "--timeout", "0.5"] + endpoints.dropLast(2) + credentials)
            #expect(refused.status == 2 && !refused.stdout.contains("v"), "\(credentials.first ?? ""): \(refused.stderr)")
        }
        // Placement logged the plaintext peer with its address (and the unlisted key, through ZAP).
        try await waitUntil("placement to log the refused plaintext peer") {
            cluster.placement.log.split(separator: "\n").contains { $0.contains("security.handshake.refused") && $0.contains("peer.address=127.0.0.1:") }
        }
        #expect(cluster.placement.log.contains("zap.refused"), "the unlisted key's refusal")
        try await cluster.stop()
    }

    @Test func sighupReloadsTheAllowlistOfEveryServiceAndCutsARemovedKeyOff() async throws {
        let cluster = try LocalCluster(nodes: 1, secured: true)
        cluster.placementArguments = ["--replicas", "1"]
        try await cluster.startAndSettle()
        let keys = try #require(cluster.keys)
        let endpoints = ["--placement", cluster.placementEndpoint, "--locks", cluster.lockEndpoint, "--timeout", "1"]
        let put = try await ToolRun.run("ringctl", ["put", "k", "v"] + endpoints + keys.ringctl(as: "client"))
        #expect(put.status == 0, "client put before the reload: \(put.stderr)")

        // The operator takes the client key off the list and sends SIGHUP.
        let before = try String(contentsOf: keys.allowlist, encoding: .utf8)
        let after = before.split(separator: "\n").filter { !$0.hasPrefix("client \(keys.client.publicKey)") }.joined(separator: "\n") + "\n"
        #expect(after != before)
        try after.write(to: keys.allowlist, atomically: true, encoding: .utf8)
        for process in [cluster.placement!, cluster.lock!, cluster.node(0)] { kill(process.pid, SIGHUP) }
        try await waitUntil("every service to log the reload") {
            [cluster.placement!, cluster.lock!, cluster.node(0)].allSatisfy { $0.log.contains("security.allowlist.reloaded") }
        }
        let refused = try await ToolRun.run("ringctl", ["get", "k"] + endpoints + keys.ringctl(as: "client"))
        #expect(refused.status != 0 && refused.stdout.isEmpty, "the removed client key still read: \(refused.stdout)")
        let lock = try await ToolRun.run("ringctl", ["lock", "list"] + endpoints + keys.ringctl(as: "client"))
        #expect(lock.status != 0, "the removed client key still reached the lock service")
        // Everyone else is unaffected: the node still heartbeats and serves the admin.
        let get = try await ToolRun.run("ringctl", ["get", "k"] + endpoints + keys.ringctl(as: "admin"))
        #expect(get.status == 0 && get.stdout == "v\n", "admin get after the reload: \(get.stderr)")
        #expect(cluster.node(0).isRunning && cluster.placement!.isRunning && cluster.lock!.isRunning, "SIGHUP must not end a service")
        try await cluster.stop()
    }
}
