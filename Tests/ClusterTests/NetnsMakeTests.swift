import Foundation
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// `make netns-up`, `make netns-status` and `make netns-down` as an operator
/// runs them (deploy/netns/cluster.sh): placement, the lock service and three
/// nodes each in a network namespace of its own on the bridge rsn-br0
/// (10.78.0.0/24), driven from this, the root, namespace with ringctl and
/// plain HTTP. The test's make gets its own RUN directory (keys, pids, logs,
/// data), so a developer's `.run/` and `make up` cluster are left alone; the
/// namespace names (rsn-) and the subnet differ from NetnsCluster's (rsf-,
/// 10.77.0.0/24).
@Suite(.serialized) struct NetnsMakeTests {
    /// The package's root, where the Makefile is.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let namespaces = ["rsn-placement", "rsn-lock", "rsn-node-1", "rsn-node-2", "rsn-node-3"]
    static let placement = "tcp://10.78.0.2:7400", locks = "tcp://10.78.0.3:7410"
    static let nodes = ["10.78.0.11:7500", "10.78.0.12:7500", "10.78.0.13:7500"]

    /// Our namespaces and links (the bridge among them) that exist now.
    static func ours() throws -> [String] {
        let pattern = /^rsn-(placement|lock|node-[0-9]+|br0)$/
        let namespaces = try Netns.ip(["netns", "list"]).split(separator: "\n").map { String($0.split(separator: " ").first ?? "") }
        let links = try Netns.ip(["-o", "link", "show"]).split(separator: "\n").compactMap { line -> String? in
            let fields = line.components(separatedBy: ": ")
            guard fields.count > 1 else { return nil }
            return String(fields[1].split(separator: "@").first ?? "")
        }
        return (namespaces + links).filter { $0.wholeMatch(of: pattern) != nil }
    }

    /// `make TARGET` in the package root, as a real process, with the tests'
    /// binaries: `swift test` holds the lock of the build directory while the
    /// tests run, so make's own `swift build` (the `build` target) would wait
    /// for it forever; SWIFT=true makes that step a no-op and `bin` names the
    /// directory of the binaries these tests run.
    static func make(_ target: String, run: URL) async throws -> ToolRun {
        try await ToolRun.run("/usr/bin/env", ["make", "--no-print-directory", "-C", root.path, target, "RUN=\(run.path)",
                                               "SWIFT=true", "bin=\(ServiceProcess.binDirectory.path)"],
                              // An outer make's flags (its jobserver) mean nothing to this one.
                              environment: ["MAKEFLAGS": "", "MFLAGS": ""], timeout: .seconds(300))
    }

    /// `make netns-down`, blocking: for a `defer`, on every way out of the test.
    static func makeDownNow(run: URL) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["make", "--no-print-directory", "-C", root.path, "netns-down", "RUN=\(run.path)"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
            process.waitUntilExit()
            if process.terminationStatus != 0 { print("NetnsMakeTests: make netns-down in cleanup exited \(process.terminationStatus)") }
        } catch {
            print("NetnsMakeTests: make netns-down in cleanup: \(error)")
        }
    }

    /// `ringctl ARGUMENTS` from this namespace against the namespaces' addresses, as admin.
    static func ringctl(_ arguments: [String], keys: URL) async throws -> ToolRun {
        try await ToolRun.run("ringctl", arguments + [
            "--placement", placement, "--locks", locks,
            "--key", keys.appendingPathComponent("admin.secret").path,
            "--server-key", keys.appendingPathComponent("cluster.pub").path,
        ])
    }

    /// The pid files of `make netns-up`, by service.
    static func pids(_ directory: URL) throws -> [String: Int32] {
        var pids: [String: Int32] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".pid") {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            pids[String(name.dropLast(4))] = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return pids
    }

    /// Whether `pid` runs: exists and is not a zombie its parent has yet to reap.
    static func running(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    @Test(.timeLimit(.minutes(10)),  // a hang guard, not a speed check
          .enabled("make netns-up needs the `ip` tool (iproute2) and root or CAP_SYS_ADMIN") {
              guard let reason = Netns.unavailableReason else { return true }
              print("NetnsMakeTests: skipping make netns-up: \(reason)")
              return false
          })
    func netnsUpServesFromTheRootNamespaceAndNetnsDownRemovesEverything() async throws {
        let before = try Self.ours()
        try #require(before.isEmpty, "a netns cluster is up already (\(before.joined(separator: " "))): `make netns-down` first (this test would take it down)")

        let run = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-netns-make-\(UUID().uuidString.prefix(8))")
        let keys = run.appendingPathComponent("keys"), directory = run.appendingPathComponent("netns")
        defer {
            Self.makeDownNow(run: run)
            try? FileManager.default.removeItem(at: run)
        }

        let up = try await Self.make("netns-up", run: run)
        try #require(up.status == 0, "make netns-up exited \(up.status):\n\(up.stdout)\n\(up.stderr)")
        for address in ["tcp://10.78.0.2:7400", "tcp://10.78.0.3:7410"] + Self.nodes.map({ "tcp://\($0)" }) {
            #expect(up.stdout.contains(address), "netns-up printed no \(address)")
        }

        // Every service runs in its own namespace, each with its address on eth0.
        let list = try Netns.ip(["netns", "list"])
        for namespace in Self.namespaces { #expect(list.contains(namespace), "ip netns list: \(list)") }
        let pids = try Self.pids(directory)
        #expect(Set(pids.keys) == ["placement", "lock", "node-1", "node-2", "node-3"])
        for (service, pid) in pids {
            #expect(try Netns.ip(["netns", "identify", "\(pid)"]).trimmingCharacters(in: .whitespacesAndNewlines) == "rsn-\(service)")
        }
        #expect(try Netns.ip(["-n", "rsn-node-2", "-4", "-o", "addr", "show", "dev", "eth0"]).contains("10.78.0.12/24"))

        // Data through the namespaces' addresses, from this namespace.
        let tag = UUID().uuidString.prefix(8)
        for index in 1...5 {
            let put = try await Self.ringctl(["put", "netns-\(index)", "value-\(index)-\(tag)"], keys: keys)
            #expect(put.status == 0 && put.stdout == "OK\n", "put: \(put.stdout) \(put.stderr)")
        }
        for index in 1...5 {
            let get = try await Self.ringctl(["get", "netns-\(index)"], keys: keys)
            #expect(get.status == 0 && get.stdout == "value-\(index)-\(tag)\n", "get: \(get.stdout) \(get.stderr)")
        }

        // ringctl status asks the nodes placement knows: the three advertised
        // namespace addresses, up, and placement and lock serving at theirs.
        let status = try await Self.ringctl(["status", "--json"], keys: keys)
        #expect(status.status == 0, "status: \(status.stdout) \(status.stderr)")
        let lines = try status.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        let nodeLines = lines.filter { $0["service"] as? String == "node" }
        #expect(Set(nodeLines.compactMap { $0["address"] as? String }) == Set(Self.nodes), "\(status.stdout)")
        #expect(nodeLines.count == 3 && nodeLines.allSatisfy { $0["status"] as? String == "SERVING" && $0["member_state"] as? String == "up" })
        for (service, address) in [("placement", "10.78.0.2:7400"), ("lock", "10.78.0.3:7410")] {
            let line = lines.first { $0["service"] as? String == service }
            #expect(line?["status"] as? String == "SERVING" && line?["address"] as? String == address, "\(status.stdout)")
        }

        // The operations ports on the namespaces' addresses: probes open, the rest behind the token.
        let ready = try HTTPFetch.get(host: "10.78.0.2", port: 9400, "/readyz")
        #expect(ready.status == 200 && ready.body == "ready\n")
        for (host, port) in [("10.78.0.3", UInt16(9410)), ("10.78.0.11", 9500), ("10.78.0.12", 9500), ("10.78.0.13", 9500)] {
            #expect(try HTTPFetch.get(host: host, port: port, "/readyz").status == 200, "\(host):\(port)/readyz")
        }
        #expect(try HTTPFetch.get(host: "10.78.0.2", port: 9400, "/metrics").status == 401)
        let token = try String(contentsOf: keys.appendingPathComponent("http.token"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let metrics = try HTTPFetch.get(host: "10.78.0.2", port: 9400, "/metrics", headers: ["Authorization": "Bearer \(token)"])
        #expect(metrics.status == 200)
        #expect(OperationsProcessTests.sample(metrics.body, "ringstore_members", ["state": "up"]) == 3)
        let mode = try FileManager.default.attributesOfItem(atPath: keys.appendingPathComponent("http.token").path)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // Up again: it says so and leaves the processes alone.
        let again = try await Self.make("netns-up", run: run)
        #expect(again.status == 0 && again.stdout.contains("already up"), "\(again.stdout)\n\(again.stderr)")
        #expect(try Self.pids(directory) == pids)
        let shown = try await Self.make("netns-status", run: run)
        #expect(shown.status == 0, "\(shown.stdout)\n\(shown.stderr)")
        #expect(shown.stdout.components(separatedBy: "namespace up, running").count == 6, "\(shown.stdout)")

        // Down: no process, namespace, veth, bridge, address or route of ours is left.
        let down = try await Self.make("netns-down", run: run)
        #expect(down.status == 0, "make netns-down exited \(down.status):\n\(down.stdout)\n\(down.stderr)")
        let left = try Self.ours()
        #expect(left.isEmpty, "left: \(left)")
        #expect(throws: (any Error).self) { try Netns.ip(["link", "show", "rsn-br0"]) }
        #expect(!(try Netns.ip(["-4", "addr", "show"])).contains("10.78.0."))
        #expect(!(try Netns.ip(["-4", "route", "show"])).contains("10.78.0."))
        for (service, pid) in pids {
            #expect(!Self.running(pid), "\(service) (pid \(pid)) still runs")
        }
        let downAgain = try await Self.make("netns-down", run: run)
        #expect(downAgain.status == 0 && downAgain.stdout.contains("nothing is up"), "\(downAgain.stdout)\n\(downAgain.stderr)")
    }
}
