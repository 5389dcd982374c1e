import Foundation
import RingProtocol
import Testing
import TestKit

/// The operations side of real processes: the HTTP port's probes and
/// metrics, its token, the config file and environment, the log format.
@Suite(.serialized) struct OperationsProcessTests {
    /// The sum of the samples of `name` whose labels include `labels`, from
    /// Prometheus's text format.
    static func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double {
        var total = 0.0
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let series = line[..<space]
            let metric = series.prefix { $0 != "{" }
            guard metric == name else { continue }
            if labels.allSatisfy({ series.contains("\($0.key)=\"\($0.value)\"") }) { total += value }
        }
        return total
    }

    static func metrics(_ port: UInt16?) throws -> String {
        let fetched = try HTTPFetch.get(port: try #require(port), "/metrics")
        #expect(fetched.status == 200)
        #expect(fetched.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        return fetched.body
    }

    @Test func aClusterServesProbesAndMetricsThatFollowItsWork() async throws {
        let cluster = try LocalCluster(nodes: 3)
        cluster.serveHTTP()
        try await cluster.start()
        defer { Task { _ = try? await cluster.stop() } }

        for port in [cluster.placementHTTP, cluster.lockHTTP] + cluster.nodeEndpoints.indices.map({ cluster.nodeHTTP[$0] }) {
            let health = try HTTPFetch.get(port: try #require(port), "/healthz")
            #expect(health.status == 200 && health.body == "ok\n")
        }
        try await waitUntil("every node to be ready (joined, up, caught up)", timeout: .seconds(30)) {
            try cluster.nodeEndpoints.indices.allSatisfy { try HTTPFetch.get(port: cluster.nodeHTTP[$0]!, "/readyz").status == 200 }
        }
        #expect(try HTTPFetch.get(port: try #require(cluster.placementHTTP), "/readyz").body == "ready\n")

        let keys = 20
        let lines = (0..<keys).map { "ops-\($0)\tvalue-\($0)" }.joined(separator: "\n") + "\n"
        let put = try await ToolRun.run("ringctl", ["put", "--stdin"] + cluster.ringctlTarget(), stdin: lines)
        #expect(put.status == 0, "\(put.stderr)")

        // Every put was coordinated by one node, and each key is on N = 3 nodes.
        try await waitUntil("the nodes' key gauges to count every replica", timeout: .seconds(20)) {
            let texts = try cluster.nodeEndpoints.indices.map { try Self.metrics(cluster.nodeHTTP[$0]) }
            return texts.map { Self.sample($0, "ringstore_node_keys") }.reduce(0, +) == Double(3 * keys)
        }
        let texts = try cluster.nodeEndpoints.indices.map { try Self.metrics(cluster.nodeHTTP[$0]) }
        let puts = texts.map { Self.sample($0, "ringstore_rpc_requests_total", ["method": "/ringstore.v1.Storage/Put", "code": "OK"]) }
        #expect(puts.reduce(0, +) == Double(keys), "puts by node: \(puts)")
        let latencies = texts.map { Self.sample($0, "ringstore_rpc_request_duration_seconds_count", ["method": "/ringstore.v1.Storage/Put"]) }
        #expect(latencies.reduce(0, +) == Double(keys))
        #expect(texts.allSatisfy { $0.contains("service=\"node\"") })

        let placement = try Self.metrics(cluster.placementHTTP)
        #expect(Self.sample(placement, "ringstore_members", ["state": "up"]) == 3)
        #expect(Self.sample(placement, "ringstore_members", ["state": "down"]) == 0)
        #expect(Self.sample(placement, "ringstore_ring_epoch") >= 1)
        #expect(Self.sample(placement, "ringstore_rpc_requests_total", ["method": "/ringstore.v1.Placement/Join", "code": "OK"]) == 3)

        let acquire = try await ToolRun.run("ringctl", ["lock", "acquire", "ops-lock", "--ttl", "30"] + cluster.ringctlTarget())
        #expect(acquire.status == 0, "\(acquire.stderr)")
        let lock = try Self.metrics(cluster.lockHTTP)
        #expect(Self.sample(lock, "ringstore_lock_grants_total") == 1)
        #expect(Self.sample(lock, "ringstore_locks_held") == 1)
        #expect(Self.sample(lock, "ringstore_rpc_requests_total", ["service": "lock", "method": "/ringstore.v1.Lock/Acquire", "code": "OK"]) == 1)

        // A node that is killed: placement counts it suspect, then down.
        _ = try await cluster.node(2).stop(signal: SIGKILL)
        try await waitUntil("placement to count the killed node down", timeout: .seconds(20)) {
            let text = try Self.metrics(cluster.placementHTTP)
            return Self.sample(text, "ringstore_members", ["state": "down"]) == 1
                && Self.sample(text, "ringstore_heartbeats_missed_total", ["became": "down"]) == 1
        }
        // The survivors' connections to it dropped.
        let dropped = try (0..<2).map { Self.sample(try Self.metrics(cluster.nodeHTTP[$0]), "ringstore_rpc_disconnects_total", ["side": "client"]) }
        #expect(dropped.reduce(0, +) >= 1, "client-side disconnects by node: \(dropped)")
    }

    @Test func aNodeThatHasNotJoinedIsAliveButNotReady() async throws {
        let cluster = try LocalCluster(nodes: 0)
        let port = FreePort.allocate()
        let node = try ServiceProcess("ringstore-node", ["--listen", FreePort.endpoint(), "--http-listen", "127.0.0.1:\(port)"]
                                        + ExecutableTests.isolated(cluster))
        defer { Task { _ = try? await node.stop() } }
        try await waitUntil("the node's HTTP port", timeout: .seconds(20)) { (try? HTTPFetch.get(port: port, "/healthz").status) == 200 }
        let ready = try HTTPFetch.get(port: port, "/readyz")
        #expect(ready.status == 503 && ready.body.contains("not joined"), "\(ready.status) \(ready.body)")
        #expect(try HTTPFetch.get(port: port, "/nope").status == 404)
        #expect(try HTTPFetch.get(port: port, "/metrics", method: "POST").status == 405)
        #expect(try HTTPFetch.get(port: port, "/healthz", method: "HEAD").body.isEmpty)
    }

    @Test func aTokenGuardsEverythingButTheProbes() async throws {
        let cluster = try LocalCluster(nodes: 0)
        let directory = cluster.dataDirectory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let token = "t0ken-" + UUID().uuidString
        let file = directory.appendingPathComponent("http-token")
        _ = FileManager.default.createFile(atPath: file.path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        let port = FreePort.allocate()
        let lock = try ServiceProcess("ringstore-lock", [
            "--listen", FreePort.endpoint(), "--publish", FreePort.endpoint(), "--data-dir", directory.appendingPathComponent("lock").path,
            "--http-listen", "127.0.0.1:\(port)", "--http-token", file.path,
        ] + cluster.serverSecurity)
        defer { Task { _ = try? await lock.stop() } }
        try await waitUntil("the lock service's HTTP port", timeout: .seconds(20)) { (try? HTTPFetch.get(port: port, "/healthz").status) == 200 }
        #expect(try HTTPFetch.get(port: port, "/readyz").status == 200, "probes need no token")
        let refused = try HTTPFetch.get(port: port, "/metrics")
        #expect(refused.status == 401 && refused.headers["www-authenticate"]?.hasPrefix("Basic") == true)
        #expect(try HTTPFetch.get(port: port, "/metrics", headers: ["Authorization": "Bearer wrong-token-123456"]).status == 401)
        #expect(try HTTPFetch.get(port: port, "/metrics", headers: ["Authorization": "Bearer \(token)"]).status == 200)
        let basic = Data("prometheus:\(token)".utf8).base64EncodedString()
        #expect(try HTTPFetch.get(port: port, "/metrics", headers: ["Authorization": "Basic \(basic)"]).status == 200)
        #expect(lock.log.contains("http.refused"))

        // Off loopback, a port without a token is refused at start.
        let open = try await ToolRun.run("ringstore-lock", ["--listen", FreePort.endpoint(), "--publish", FreePort.endpoint(),
                                                            "--data-dir", directory.appendingPathComponent("open").path,
                                                            "--http-listen", "0.0.0.0:\(FreePort.allocate())"] + cluster.serverSecurity)
        #expect(open.status == 64 && open.stderr.contains("--http-token"), "\(open.status) \(open.stderr)")
    }

    @Test func optionsComeFromTheFileThenTheEnvironmentThenFlags() async throws {
        let cluster = try LocalCluster(nodes: 0)
        let directory = cluster.dataDirectory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let fromFile = FreePort.endpoint(), fromFlag = FreePort.endpoint()
        let config = directory.appendingPathComponent("lock.toml")
        try """
            # the lock service
            listen = "\(fromFile)"
            publish = "\(FreePort.endpoint())"
            data-dir = "\(directory.appendingPathComponent("lock").path)"
            log-format = "text"
            """.write(to: config, atomically: true, encoding: .utf8)

        // The file's listen endpoint, with the environment's log format over the file's.
        let lock = try ServiceProcess("ringstore-lock", ["--config", config.path] + cluster.serverSecurity,
                                      environment: ["RINGSTORE_LOG_FORMAT": "json"])
        try await cluster.waitHealthy(fromFile, LockMethods.health)
        let lines = lock.log.split(separator: "\n").filter { $0.hasPrefix("{") }
        #expect(!lines.isEmpty, "json log lines: \(lock.log.prefix(400))")
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["message"] is String && (object?["time"] as? String)?.hasSuffix("Z") == true, "\(line)")
        }
        #expect(lock.log.contains("\"lock.listening\""))
        _ = try await lock.stop()

        // A flag wins over both.
        let flagged = try ServiceProcess("ringstore-lock", ["--config", config.path, "--listen", fromFlag] + cluster.serverSecurity,
                                         environment: ["RINGSTORE_LISTEN": fromFile])
        defer { Task { _ = try? await flagged.stop() } }
        try await cluster.waitHealthy(fromFlag, LockMethods.health)
        #expect(flagged.log.contains("lock.listening") && flagged.log.contains(fromFlag))
        #expect(!flagged.log.contains("{\"time\""), "text lines, as the file says")

        let bad = try await ToolRun.run("ringstore-lock", ["--config", config.path] + cluster.serverSecurity,
                                        environment: ["RINGSTORE_FORGET_AFTER": "soon"])
        #expect(bad.status == 64 && bad.stderr.contains("forget-after"), "\(bad.stderr)")
        let version = try await ToolRun.run("ringstore-lock", ["--version"])
        #expect(version.status == 0 && version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
    }

    @Test func theQuorumDefaultsAreSetOnPlacementAndFollowedByEveryNode() async throws {
        let cluster = try LocalCluster(nodes: 3)
        cluster.placementArguments = ["--default-w", "3", "--default-r", "1"]
        try await cluster.start()
        defer { Task { _ = try? await cluster.stop() } }
        try await waitUntil("every node to route by a ring of three", timeout: .seconds(20)) {
            let status = try await ToolRun.run("ringctl", ["status", "--json"] + cluster.ringctlOptions)
            return status.stdout.components(separatedBy: "\"default_w\":\"3\"").count - 1 == 3
                && status.stdout.components(separatedBy: "\"ring_members\":\"3\"").count - 1 == 3
        }
        let put = try await ToolRun.run("ringctl", ["put", "quorum-key", "v"] + cluster.ringctlTarget())
        #expect(put.status == 0, "\(put.stderr)")
        _ = try await cluster.node(2).stop(signal: SIGKILL)
        // Once placement has it down, clients ask it last: a live node
        // coordinates, and the quorum decides (a put sent to the dead node
        // would only time out, which says nothing about W).
        try await cluster.waitForMembers([cluster.nodeAddress(2)], state: .down)
        // W=3 from the ring cannot be met with a replica dead; R=1 can.
        let refused = try await ToolRun.run("ringctl", ["put", "other-key", "w"] + cluster.ringctlTarget())
        #expect(refused.status != 0 && refused.stderr.contains("UNAVAILABLE") && refused.stderr.contains("3"),
                "\(refused.status) \(refused.stderr)")
        let read = try await ToolRun.run("ringctl", ["get", "quorum-key"] + cluster.ringctlTarget())
        #expect(read.status == 0 && read.stdout.hasPrefix("v"), "\(read.stdout) \(read.stderr)")
        let bad = try await ToolRun.run("ringstore-placement", ["--replicas", "3", "--default-w", "4", "--insecure"])
        #expect(bad.status == 64 && bad.stderr.contains("--default-w"), "\(bad.stderr)")
    }

    @Test func longWorkShowsItsProgressOnATerminalAndOnlyThere() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.start()
        defer { Task { _ = try? await cluster.stop() } }
        let directory = cluster.dataDirectory
        let input = directory.appendingPathComponent("lines.tsv"), output = directory.appendingPathComponent("answers")
        try ((0..<500).map { "progress-\($0)\tv" }.joined(separator: "\n") + "\n").write(to: input, atomically: true, encoding: .utf8)
        let ringctl = ServiceProcess.binDirectory.appendingPathComponent("ringctl").path
        let target = cluster.ringctlTarget().map { "'\($0)'" }.joined(separator: " ")

        // stderr on a terminal (script(1) gives the command one), answers to a file: a progress line.
        let shown = try await ToolRun.run("/usr/bin/script", ["-qec", "\(ringctl) put --stdin \(target) < \(input.path) > \(output.path)", "/dev/null"])
        #expect(shown.status == 0, "\(shown.stdout)")
        #expect(shown.stdout.contains("put: 500 lines") && shown.stdout.contains("0 failed"), "\(shown.stdout)")
        #expect(try String(contentsOf: output, encoding: .utf8).split(separator: "\n").count == 500)
        // Piped: no progress at all.
        let piped = try await ToolRun.run("ringctl", ["get", "--stdin"] + cluster.ringctlTarget(),
                                          stdin: (0..<500).map { "progress-\($0)" }.joined(separator: "\n"))
        #expect(piped.status == 0 && piped.stderr.isEmpty, "\(piped.stderr)")

        // status --watch: piped, one report after another; on a terminal, each over the last.
        let watching = try ServiceProcess("ringctl", ["status", "--watch", "--interval", "0.2"] + cluster.ringctlOptions)
        try await waitUntil("three reports", timeout: .seconds(20)) { watching.log.components(separatedBy: "Ctrl-C to stop").count > 3 }
        #expect(try await watching.stop(signal: SIGINT) != 0 || !watching.isRunning)
        #expect(!watching.log.contains("\u{1B}["), "no terminal codes when piped")
        let inPlace = try await ToolRun.run("/usr/bin/script", ["-qec", "timeout -s INT 1.5 \(ringctl) status --watch --interval 0.3 \(cluster.ringctlOptions.map { "'\($0)'" }.joined(separator: " "))", "/dev/null"])
        #expect(inPlace.stdout.contains("A\u{1B}[J") && inPlace.stdout.contains("SERVING"), "\(inPlace.stdout.prefix(300))")
    }
}
