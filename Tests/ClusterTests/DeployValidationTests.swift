import Foundation
import Testing
import TestKit

/// deploy/ checked offline by real validators, the ones `make test-deps`
/// installs: yamllint, kubernetes-validate, hadolint, shellcheck,
/// systemd-analyze, check-jsonschema (the compose-spec schema) and
/// promql-parser; then what no schema sees: RINGSTORE_* names and config keys
/// against the operations contract, volumes, selectors, ports and keys that
/// must match across files, and the dashboard's metrics against metrics.txt.
/// No Docker engine, Kubernetes cluster or systemd as PID 1 is needed.
/// The Kubernetes layouts are checked in DeployValidationTests+Kubernetes.swift,
/// the compose files and make up-ha's command lines in DeployValidationTests+Compose.swift.
@Suite struct DeployValidationTests {
    @Test func everyYAMLFilePassesYamllint() async throws {
        let files = Deploy.files(endingWith: [".yaml", ".yml"])
        #expect(files.count >= 7, "the compose file and the Kubernetes manifests: \(files)")
        let run = try await Validator.run("yamllint", ["-s", "-f", "parsable", "-c", Deploy.path(".yamllint")] + files)
        #expect(run?.status == 0, "yamllint -s:\n\(run?.output ?? "")")
    }

    @Test(arguments: ["1.29.0", "1.37.0"])
    func kubernetesManifestsValidateStrictly(version: String) async throws {
        let run = try await Validator.run("kubernetes-validate", ["--strict", "--quiet", "-k", version] + Deploy.kubernetesManifests)
        #expect(run?.status == 0, "kubernetes-validate --strict -k \(version):\n\(run?.output ?? "")")
    }

    @Test func dockerfilePassesHadolintAndCopiesWhatTheContextHolds() async throws {
        let dockerfile = Deploy.path("docker/Dockerfile")
        let run = try await Validator.run("hadolint", ["--no-color", "--failure-threshold", "style", dockerfile])
        #expect(run?.status == 0, "hadolint:\n\(run?.output ?? "")")
        let text = try String(contentsOfFile: dockerfile, encoding: .utf8)
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let user = lines.last { $0.hasPrefix("USER ") }.map { String($0.dropFirst(5)) } ?? ""
        #expect(user.split(separator: ":").allSatisfy { Int($0).map { $0 > 0 } ?? false }, "the last USER is numeric and not root: \(user)")
        // A file COPY'd from the context must exist and not be cut by the ignore file.
        let ignore = try String(contentsOfFile: Deploy.path("docker/Dockerfile.dockerignore"), encoding: .utf8)
        for line in lines where line.hasPrefix("COPY ") && !line.contains("--from=") {
            let source = line.split(separator: " ").dropFirst().filter { !$0.hasPrefix("--") }.dropLast().joined()
            guard source.hasPrefix("deploy/") else { continue }
            #expect(FileManager.default.isExecutableFile(atPath: Deploy.root.appendingPathComponent(source).path), "\(source) is missing")
            #expect(ignore.contains("\n!\(source)\n"), "Dockerfile.dockerignore ignores \(source)")
        }
    }

    @Test func shellScriptsPassShellcheck() async throws {
        let scripts = Deploy.files(endingWith: [".sh"])
        #expect(scripts.count >= 4)
        let run = try await Validator.run("shellcheck", scripts)
        #expect(run?.status == 0, "shellcheck:\n\(run?.output ?? "")")
    }

    /// `systemd-analyze verify --root` checks each unit as systemd would load it
    /// and that every Exec path is executable inside that root. The root holds
    /// Debian's own units (the targets ours order against), ours, /bin/kill
    /// copied from this host (ExecReload) and stubs for the binaries an install
    /// puts in /usr/local/bin: verify only checks that they exist and may run,
    /// and the real binaries are what the other process tests run.
    @Test func systemdUnitsVerifyAndAreHardened() async throws {
        let units = Deploy.files(endingWith: [".service"], under: "systemd")
        #expect(units.count == 3)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-units-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let files = FileManager.default
        for directory in ["usr/lib/systemd", "usr/bin", "usr/local/bin", "etc/systemd/system"] {
            try files.createDirectory(at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        try files.createSymbolicLink(atPath: root.appendingPathComponent("bin").path, withDestinationPath: "usr/bin")
        let copy = try await ToolRun.run("/bin/cp", ["-a", "/usr/lib/systemd/system", root.appendingPathComponent("usr/lib/systemd").path])
        #expect(copy.status == 0, "\(copy.stderr)")
        try files.copyItem(atPath: "/usr/bin/kill", toPath: root.appendingPathComponent("usr/bin/kill").path)
        for binary in ["ringstore-placement", "ringstore-lock", "ringstore-node", "ringctl"] {
            let stub = root.appendingPathComponent("usr/local/bin/\(binary)").path
            #expect(files.createFile(atPath: stub, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755]))
        }
        var names: [String] = []
        for unit in units {
            let file = (unit as NSString).lastPathComponent
            try files.copyItem(atPath: unit, toPath: root.appendingPathComponent("etc/systemd/system/\(file)").path)
            names.append(file.replacingOccurrences(of: "@.service", with: "@1.service"))
            let text = try String(contentsOfFile: unit, encoding: .utf8)
            for line in ["ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "RestartSec=", "After=network-online.target",
                         "Wants=network-online.target", "StateDirectory=ringstore/", "LimitNOFILE=", "NoNewPrivileges=yes",
                         "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "ProtectKernelTunables=yes",
                         "ProtectKernelModules=yes", "ProtectKernelLogs=yes", "CapabilityBoundingSet=\n",
                         "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service"] {
                #expect(text.contains("\n" + line), "\(file) has no \(line)")
            }
            #expect(text.contains("ExecStart=/usr/local/bin/ringstore-") && text.contains(" --config /etc/ringstore/"), "\(file): --config")
            let settings = text.split(separator: "\n").filter { !$0.hasPrefix("#") }
            #expect(!settings.contains { $0.hasPrefix("Requires=") || $0.hasPrefix("BindsTo=") }, "\(file): a node host need not run placement")
        }
        #expect(names.contains("ringstore-node@1.service"))
        guard let analyze = await Validator.locate("systemd-analyze") else { return }
        // verify exits 0 on an unknown key (it only warns): any output fails.
        let verify = try await ToolRun.run(analyze, ["verify", "--man=no", "--root=\(root.path)"] + names)
        #expect(verify.status == 0 && verify.output.isEmpty, "systemd-analyze verify:\n\(verify.output)")
        for name in names {
            // Exposure 0.0 (locked down) to 10.0 (unsafe), here times ten: ours is 1.5 with systemd 252, and
            // dropping one of NoNewPrivileges, PrivateTmp or RestrictNamespaces takes it over 1.6.
            let security = try await ToolRun.run(analyze, ["security", "--offline=yes", "--threshold=16", "--root=\(root.path)", name])
            #expect(security.status == 0, "systemd-analyze security \(name):\n\(security.stdout.split(separator: "\n").suffix(3).joined(separator: "\n"))")
        }
    }

    @Test func exampleConfigFilesNameOnlyTheServicesOptions() throws {
        for (file, service) in [("placement.toml.example", "placement"), ("lock.toml.example", "lock"), ("node.toml.example", "node")] {
            let settings = try FlatTOML.read(Deploy.path("systemd/\(file)"))
            for (line, name, _) in settings {
                #expect(Contract.options[service, default: []].contains(name), "\(file):\(line): \(name) is not an option of \(service)")
            }
            // The data directory must be the unit's StateDirectory, the one path ProtectSystem=strict leaves writable.
            let unit = try String(contentsOfFile: Deploy.path("systemd/ringstore-\(service == "node" ? "node@" : service).service"), encoding: .utf8)
            let state = unit.split(separator: "\n").first { $0.hasPrefix("StateDirectory=") }.map { "/var/lib/" + $0.dropFirst(15) } ?? "?"
            let dataDir = settings.first { $0.name == "data-dir" }?.value ?? ""
            #expect(dataDir == state.replacingOccurrences(of: "%i", with: "1"), "\(file): data-dir \(dataDir), StateDirectory \(state)")
        }
    }

    @Test func everyRingstoreVariableIsAnOption() throws {
        let pattern = /RINGSTORE_[A-Z0-9_]+/
        var seen = 0
        for file in Deploy.files(endingWith: [".yaml", ".example", ".sh", ".service", "Dockerfile", ".md"]) {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            for match in text.matches(of: pattern) {
                seen += 1
                let name = String(text[match.range])
                #expect(Contract.allVariables.contains(name), "\(file): \(name) is not a RINGSTORE_ variable of the contract")
            }
        }
        #expect(seen > 20)
    }

    @Test func dashboardQueriesParseAndUseOnlyTheContractsMetrics() async throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Deploy.path("grafana/ringstore.json")))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? Object)
        #expect((dashboard["schemaVersion"] as? Int ?? 0) >= 36)
        let variables = dashboard.object("templating").array("list")
        #expect(variables.contains { $0.string("name") == "datasource" && $0.string("type") == "datasource" && $0.string("query") == "prometheus" })
        for variable in variables where variable.string("type") == "query" {
            #expect(variable.object("datasource").string("uid") == "${datasource}", "variable \(variable.string("name") ?? ""): datasource")
        }
        var panels: [Object] = [], pending = dashboard.array("panels")
        while let panel = pending.popLast() {
            panels.append(panel)
            pending += panel.array("panels")
        }
        let ids = panels.compactMap { $0["id"] as? Int }
        #expect(Set(ids).count == panels.count, "every panel has an id of its own")
        var expressions: [String] = []
        for panel in panels where panel.string("type") != "row" {
            #expect(panel.object("datasource").string("uid") == "${datasource}", "\(panel.string("title") ?? ""): datasource")
            for target in panel.array("targets") {
                #expect(target.object("datasource").string("uid") == "${datasource}")
                expressions.append(target.string("expr") ?? "")
            }
        }
        #expect(expressions.count >= 18)
        let metrics = try MetricList.read(Deploy.path("grafana/metrics.txt"))
        var used: Set<String> = []
        for (expression, names) in try await PromQL.selectors(in: expressions) {
            #expect(!names.isEmpty, "\(expression) selects no metric")
            for name in names {
                let metric = metrics.metric(for: name)
                #expect(metric != nil, "\(expression): \(name) is not in metrics.txt")
                if let metric { used.insert(metric) }
            }
        }
        for variable in variables {
            guard let query = variable.string("definition"), let match = query.firstMatch(of: /label_values\((\w+),/) else { continue }
            #expect(metrics.metric(for: String(match.1)) != nil, "variable \(variable.string("name") ?? ""): \(match.1)")
        }
        #expect(used == Set(metrics.types.keys), "metrics.txt names no panel shows: \(Set(metrics.types.keys).subtracting(used).sorted())")
    }

    @Test func makeKeysWritesPrivateKeysAndOnlyAddsWhatIsMissing() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-make-keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let keys = directory.appendingPathComponent("keys")
        let script = Deploy.path("docker/make-keys.sh")
        let ringctl = "RINGCTL=" + ServiceProcess.binDirectory.appendingPathComponent("ringctl").path
        let first = try await ToolRun.run("/usr/bin/env", [ringctl, script, keys.path, "node-1", "node-2"])
        #expect(first.status == 0, "\(first.output)")
        let allowlist = try String(contentsOf: keys.appendingPathComponent("allowlist"), encoding: .utf8)
        let entries = allowlist.split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: " ").map(String.init) }
        #expect(entries.map { [$0[0], $0[2]] } == [["admin", "admin"], ["node", "node-1"], ["node", "node-2"]])
        for entry in entries {
            let published = try String(contentsOf: keys.appendingPathComponent("\(entry[2]).pub"), encoding: .utf8)
            #expect(published == entry[1] + "\n", "the allowlist lists \(entry[2])'s public key")
        }
        for secret in ["cluster.secret", "admin.secret", "node-1.secret", "node-2.secret", "http-token", "resp-passwords", "allowlist"] {
            let mode = try FileManager.default.attributesOfItem(atPath: keys.appendingPathComponent(secret).path)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(secret) mode \(String(mode ?? 0, radix: 8))")
        }
        let token = try String(contentsOf: keys.appendingPathComponent("http-token"), encoding: .utf8)
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        let second = try await ToolRun.run("/usr/bin/env", [ringctl, script, keys.path, "node-1", "node-2", "node-3"])
        #expect(second.status == 0 && second.output.contains("made key node-3") && !second.output.contains("made key node-1"), "\(second.output)")
        let after = try String(contentsOf: keys.appendingPathComponent("allowlist"), encoding: .utf8)
        #expect(after.hasPrefix(allowlist) && after.split(separator: "\n").count == allowlist.split(separator: "\n").count + 1)
        #expect(try String(contentsOf: keys.appendingPathComponent("http-token"), encoding: .utf8) == token)
    }

    @Test func healthcheckSucceedsOnlyOn200() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-healthz-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data("ok\n".utf8).write(to: directory.appendingPathComponent("healthz"))
        guard let python = await Validator.locate("python3") else { return }
        let port = FreePort.allocate()
        // A stand-in HTTP server (the services' own is tested with them): /healthz 200, /readyz 404.
        let server = try ServiceProcess(python, ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory.path])
        let script = Deploy.path("docker/healthcheck.sh")
        func check(_ listen: String, _ path: String) async throws -> ToolRun {
            try await ToolRun.run("/usr/bin/env", ["RINGSTORE_HTTP_LISTEN=\(listen)", script, path], timeout: .seconds(15))
        }
        try await waitUntil("the stand-in server to answer") { try await check("0.0.0.0:\(port)", "/healthz").status == 0 }
        #expect(try await check("127.0.0.1:\(port)", "/healthz").status == 0)
        let unready = try await check("0.0.0.0:\(port)", "/readyz")
        #expect(unready.status == 1 && unready.stderr.contains("404"), "\(unready.output)")
        // SIGKILL: a child of the test runner may inherit SIGTERM blocked.
        try await server.stop(signal: SIGKILL)
        #expect(try await check("0.0.0.0:\(port)", "/healthz").status == 1)
        #expect(try await check("", "/healthz").status == 1)
    }
}
