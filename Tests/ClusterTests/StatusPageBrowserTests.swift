import Foundation
import Testing
import TestKit

/// Placement's status page in a real browser: Debian's chromium driven by
/// playwright (both installed by `make test-deps`), against a real cluster.
@Suite(.serialized) struct StatusPageBrowserTests {
    static let chromium = "/usr/bin/chromium"

    @Test func aJoinShowsUpOnThePageLive() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.chromium), "chromium is missing: `make test-deps` installs it")
        let cluster = try LocalCluster(nodes: 3)
        cluster.serveHTTP()
        try await cluster.start()
        defer { Task { _ = try? await cluster.stop() } }
        let port = try #require(cluster.placementHTTP)
        let joining = cluster.addNode()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("status_page.py").path
        let browser = try ServiceProcess("/usr/bin/env", [
            "python3", script, "http://127.0.0.1:\(port)/",
            cluster.nodeEndpoints.indices.dropLast().map(cluster.nodeAddress).joined(separator: ","),
            cluster.nodeAddress(joining),
        ], environment: ["CHROMIUM": Self.chromium])
        defer { Task { _ = try? await browser.stop(signal: SIGKILL) } }
        try await waitUntil("the page to show the cluster", timeout: .seconds(60)) {
            if !browser.isRunning { throw FixtureError("the browser script ended: \(browser.log)") }
            return browser.log.contains("READY")
        }
        try await cluster.startNode(joining)
        let status = try await browser.waitForExit(timeout: .seconds(90))
        #expect(status == 0 && browser.log.contains("JOINED"), "\(browser.log)")
    }
}
