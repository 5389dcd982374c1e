import Foundation
import RPC
import RingProtocol
import SwiftProtobuf
import Testing
import TestKit
import ZeroMQ

/// End-to-end tests with the real built executables.
@Suite(.serialized) struct ExecutableTests {
    /// Point a lone node at a placement endpoint nobody serves, never at a
    /// local cluster on the default ports, with a data directory of its own,
    /// and the keys of `cluster` (which has no node of its own).
    static func isolated(_ cluster: LocalCluster) -> [String] {
        ["--placement", FreePort.endpoint(), "--placement-events", FreePort.endpoint(),
         "--data-dir", loneDataRoot.appendingPathComponent(UUID().uuidString).path] + cluster.nodeSecurity(0)
    }

    /// Where lone nodes keep their data; removed when the suite is done.
    static let loneDataRoot = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-lone-\(UUID().uuidString)")


    @Test func keygenWritesAPrivateKeypairAndNeverOverwritesIt() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-keygen-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try await ToolRun.run("ringctl", ["keygen", "ops", "--dir", directory.path])
        #expect(run.status == 0, "\(run.stderr)")
        let printed = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let pair = try KeyFiles.readPair(directory.appendingPathComponent("ops.secret"))
        #expect(printed == pair.publicKey.z85, "stdout is the public key")
        #expect(try KeyFiles.readPublicKey(directory.appendingPathComponent("ops.pub")) == pair.publicKey)
        let mode = try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent("ops.secret").path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let again = try await ToolRun.run("ringctl", ["keygen", "ops", "--dir", directory.path])
        #expect(again.status == 1 && again.stderr.contains("exists"), "\(again.stderr)")
        #expect(try KeyFiles.readPair(directory.appendingPathComponent("ops.secret")) == pair, "the first key is kept")
        let bad = try await ToolRun.run("ringctl", ["keygen", "../escape", "--dir", directory.path])
        #expect(bad.status == 1 && bad.stderr.contains("cannot name a key"), "\(bad.stderr)")
    }

    @Test func servicesAnswerHealthAndStopCleanlyOnSIGTERM() async throws {
        let cluster = try LocalCluster(nodes: 2)
        try await cluster.start()
        let status = try await ToolRun.run("ringctl", ["status"] + cluster.ringctlOptions)
        #expect(status.status == 0, "ringctl status failed: \(status.stderr)")
        let lines = status.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("SERVICE") == true)
        #expect(lines.filter { $0.contains("SERVING") }.count == 4)
        #expect(lines.contains { $0.hasPrefix("placement") } && lines.contains { $0.hasPrefix("lock") })

        let statuses = try await cluster.stop()
        #expect(statuses == [0, 0, 0, 0])
        #expect(cluster.placement.log.contains("service.stopped"))
        #expect(cluster.node(0).log.contains("service.stopped"))
    }

    @Test func sigintStopsAServiceToo() async throws {
        let endpoint = FreePort.endpoint()
        let cluster = try LocalCluster(nodes: 0)
        let node = try ServiceProcess("ringstore-node", ["--listen", endpoint] + Self.isolated(cluster))
        try await cluster.waitHealthy(endpoint, StorageMethods.health)
        #expect(try await node.stop(signal: SIGINT) == 0)
        try? FileManager.default.removeItem(at: Self.loneDataRoot)
    }

    @Test func statusJSONAndNonZeroExitWhenAServiceIsUnreachable() async throws {
        let cluster = try LocalCluster(nodes: 1)
        try await cluster.start()
        let missing = "127.0.0.1:\(FreePort.allocate())"
        let node = cluster.nodeEndpoints[0].replacingOccurrences(of: "tcp://", with: "")
        let run = try await ToolRun.run("ringctl", ["status", "--json", "--timeout", "0.5", "--nodes", "\(node),\(missing)"]
                                            + cluster.ringctlTarget())
        #expect(run.status == 1)
        #expect(run.stderr.contains("1 of 4 services unreachable"))
        let objects = try run.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(objects.count == 4)
        #expect(objects.filter { $0["healthy"] as? Bool == true }.count == 3)
        let down = try #require(objects.first { $0["healthy"] as? Bool == false })
        #expect(down["status"] as? String == "UNREACHABLE")
        #expect((down["endpoint"] as? String)?.hasSuffix(missing) == true)
        try await cluster.stop()
    }

    @Test func malformedRequestsToARunningNodeGetErrorsAndItKeepsServing() async throws {
        let cluster = try LocalCluster(nodes: 1)
        try await cluster.start()
        let endpoint = cluster.nodeEndpoints[0]
        func header(_ method: String, id: UInt64) throws -> [UInt8] {
            try WireRequestHeader.with {
                $0.version = wireProtocolVersion
                $0.method = method
                $0.requestID = id
            }.serializedBytes()
        }
        let health = StorageMethods.health.path
        let cases: [(String, [ZMQFrame], WireStatusCode?)] = [
            ("garbage frame", [[0xDE, 0xAD]], nil),
            ("wrong frame count", [[], try header(health, id: 1)], .invalidArgument),
            ("undecodable header", [[], [0xFF, 0xFF], []], .invalidArgument),
            ("undecodable body", [[], try header(health, id: 2), [0x0A, 0xFF]], .invalidArgument),
            ("unknown method", [[], try header("/ringstore.v1.Storage/Explode", id: 3), []], .unimplemented),
        ]
        let security = cluster.security
        try await Task.detached {
            let context = try ZMQContext()
            for (name, frames, expected) in cases {
                let dealer = try ZMQSocket(context: context, type: .dealer)
                // Over CURVE as admin: the frames reach the request handling.
                if let security { try dealer.setCurveClient(security.keys, server: security.serverKey) }
                try dealer.connect(endpoint)
                try dealer.send(frames)
                try dealer.setReceiveTimeout(milliseconds: expected == nil ? 300 : 5000)
                let reply = try dealer.receive().flatMap(Envelope.parseReply)
                if let expected {
                    #expect(reply?.header.code == expected, "\(name)")
                } else {
                    #expect(reply == nil, "\(name)")
                }
                dealer.close()
            }
        }.value
        #expect(cluster.node(0).isRunning)
        let client = try cluster.nodeClient(0)
        let reply = try await client.call(StorageMethods.health, WireHealthRequest())
        #expect(reply.status == .serving)
        #expect(reply.details["malformed_requests"] == "5")  // every case above, dropped or answered
        client.close()
        #expect(cluster.node(0).log.contains("rpc.method.unknown"))
        try await cluster.stop()
    }

    @Test func aBusyPortFailsWithAClearErrorAndExitStatus() async throws {
        let endpoint = FreePort.endpoint()
        let cluster = try LocalCluster(nodes: 0)
        let first = try ServiceProcess("ringstore-node", ["--listen", endpoint] + Self.isolated(cluster))
        try await cluster.waitHealthy(endpoint, StorageMethods.health)
        let second = try ServiceProcess("ringstore-node", ["--listen", endpoint] + Self.isolated(cluster))
        let status = try await second.waitForExit()
        #expect(status != 0)
        #expect(second.log.contains("Address already in use"))
        #expect(try await first.stop() == 0)
        try? FileManager.default.removeItem(at: Self.loneDataRoot)
    }

    /// Where security is not what a case is about, it says --insecure, so
    /// that the missing keys are not what fails.
    @Test(arguments: [
        ("ringstore-node", ["--listen", "nonsense", "--insecure"], "--listen"),
        ("ringstore-placement", ["--publish", "tcp://127.0.0.1:99999", "--insecure"], "--publish"),
        ("ringstore-lock", ["--log-level", "loud", "--insecure"], "log-level"),
        ("ringctl", ["status", "--nodes", "no-port", "--insecure"], "--nodes"),
        ("ringctl", ["status", "--timeout", "-1", "--insecure"], "--timeout"),
        ("ringctl", ["frobnicate"], "frobnicate"),
        ("ringctl", ["bench", "echo", "--concurrency", "0", "--insecure"], "--concurrency"),
        ("ringstore-lock", ["--server-key", "/nonexistent.secret"], "--allowlist go together"),
        ("ringstore-placement", ["--insecure", "--allowlist", "/a"], "--insecure excludes"),
        // Without keys a service now stops at "no CURVE keys" first: a client key is refused with --insecure.
        ("ringstore-node", ["--client-key", "/k.secret", "--insecure"], "--client-key needs"),
        ("ringstore-placement", ["--server-key", "/nonexistent.secret", "--allowlist", "/nonexistent"], "nonexistent.secret"),
        ("ringctl", ["get", "k", "--insecure", "--key", "/k.secret"], "--insecure excludes"),
        ("ringctl", ["get", "k", "--key", "/nonexistent.secret", "--server-key", "/nonexistent.pub"], "nonexistent.secret"),
    ])
    func garbageArgumentsGetAClearErrorAndNonZeroExit(executable: String, arguments: [String], mentions: String) async throws {
        let run = try await ToolRun.run(executable, arguments, timeout: .seconds(20))
        #expect(run.status != 0)
        #expect(run.stderr.contains(mentions), "stderr: \(run.stderr)")
    }

    /// Secure by default: a service given neither keys nor --insecure does
    /// not start open; it exits with the usage status and says what to pass.
    @Test(arguments: ["ringstore-lock", "ringstore-placement", "ringstore-node"])
    func aServiceWithoutKeysOrInsecureRefusesToStart(executable: String) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-nokeys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try await ToolRun.run(executable, ["--listen", FreePort.endpoint(), "--data-dir", directory.path], timeout: .seconds(20))
        #expect(run.status == 64, "\(executable): \(run.stderr)")
        #expect(run.stderr.contains("--server-key") && run.stderr.contains("--allowlist") && run.stderr.contains("--insecure"),
                "\(executable): \(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory.path), "\(executable) made its data directory before refusing")
    }

    /// ringctl without a key (none given, none in the environment or in a
    /// `.run/keys` of its working directory) and without --insecure ends
    /// before any call, saying what to pass.
    @Test(arguments: [["get", "k"], ["members"], ["lock", "status", "jobs"]])
    func ringctlWithoutKeysOrInsecureExitsTwoAndSaysWhatToPass(arguments: [String]) async throws {
        let run = try await ToolRun.run("ringctl", arguments + ["--placement", FreePort.endpoint(), "--locks", FreePort.endpoint()],
                                        timeout: .seconds(20))
        #expect(run.status == 2, "\(arguments): \(run.stderr)")
        #expect(run.stderr.contains("--key") && run.stderr.contains("--server-key") && run.stderr.contains("--insecure"),
                "\(arguments): \(run.stderr)")
        #expect(run.stdout.isEmpty)
    }

    /// The executable's side of DataCommandArgumentTests: the reason on stderr, the usage status (64), nothing on stdout.
    @Test(arguments: [
        (["put", "", "v"], "Error: KEY must not be empty"),
        (["get", "k", "--r", "0"], "Error: --r must be 1...16, not 0"),
        (["put", "k", "v", "--timeout", "0"], "Error: --timeout must be more than 0 and at most 3600 seconds, not 0.0"),
    ] as [([String], String)])
    func dataCommandsRefuseBadInputWithTheUsageStatusAndTheReason(arguments: [String], firstLine: String) async throws {
        let run = try await ToolRun.run("ringctl", arguments + ["--placement", "tcp://127.0.0.1:1", "--insecure"], timeout: .seconds(20))
        #expect(run.status == 64)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.split(separator: "\n").first.map(String.init) == firstLine, "stderr: \(run.stderr)")
    }

    @Test func benchEchoPrintsFigures() async throws {
        let cluster = try LocalCluster(nodes: 0)
        try await cluster.start()
        let run = try await ToolRun.run("ringctl", ["bench", "echo", "--json", "--requests", "500", "--throughput-requests", "3200"]
                                            + cluster.ringctlTarget())
        #expect(run.status == 0, "\(run.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect((object["rtt_p50_us"] as? Int ?? 0) > 0)
        #expect((object["throughput_rps"] as? Int ?? 0) > 0)
        #expect(object["in_flight"] as? Int == 32)
        try await cluster.stop()
    }
}
