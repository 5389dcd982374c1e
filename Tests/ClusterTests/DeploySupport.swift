import Foundation
import ServiceHost
import Testing
import TestKit

// MARK: - deploy/ and its validators

/// Files under the checkout's deploy/.
enum Deploy {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = root.appendingPathComponent("deploy")

    static func path(_ relative: String) -> String { directory.appendingPathComponent(relative).path }

    /// Files under `subdirectory` whose names end with one of `suffixes`, sorted.
    static func files(endingWith suffixes: [String], under subdirectory: String = "") -> [String] {
        let base = subdirectory.isEmpty ? directory : directory.appendingPathComponent(subdirectory)
        let found = FileManager.default.enumerator(atPath: base.path)?.compactMap { $0 as? String } ?? []
        return found.filter { name in suffixes.contains { name.hasSuffix($0) } }.map { base.appendingPathComponent($0).path }.sorted()
    }

    /// The Kubernetes layouts, each a kustomization of the manifests beside it:
    /// one placement and one lock service, and the control plane replicated on etcd.
    static let kubernetesLayouts = ["kubernetes", "kubernetes/ha"]

    /// A layout's resources, the files directly in its directory (kustomization.yaml is kustomize's, not one).
    static func kubernetesManifests(in layout: String) -> [String] {
        let directory = self.path(layout)
        return files(endingWith: [".yaml"], under: layout)
            .filter { ($0 as NSString).deletingLastPathComponent == directory && !$0.hasSuffix("/kustomization.yaml") }
    }

    /// Every layout's resources.
    static var kubernetesManifests: [String] { kubernetesLayouts.flatMap(kubernetesManifests(in:)) }

    /// The compose files: the cluster, and the cluster with its control plane replicated on etcd.
    static let composeFiles = ["compose/compose.yaml", "compose/compose.ha.yaml"]
}

/// A validator program, found on PATH or in Python's scripts directory (where pip puts them).
enum Validator {
    /// The path of `name`, or nil after recording that `make test-deps` installs it.
    static func locate(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) async -> String? {
        var directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        if name != "python3", let python = find("python3", in: directories),
           let run = try? await ToolRun.run(python, ["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]), run.status == 0 {
            directories.insert(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines), at: 0)
        }
        if let path = find(name, in: directories) { return path }
        Issue.record("\(name) is not installed: `make test-deps` installs it", sourceLocation: sourceLocation)
        return nil
    }

    /// Runs validator `name` to its end; nil (an issue recorded) when it is not installed.
    static func run(_ name: String, _ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws -> ToolRun? {
        guard let path = await locate(name, sourceLocation: sourceLocation) else { return nil }
        return try await ToolRun.run(path, arguments, timeout: .seconds(120))
    }

    private static func find(_ name: String, in directories: [String]) -> String? {
        directories.map { ($0 as NSString).appendingPathComponent(name) }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

extension ToolRun {
    var output: String { stdout + stderr }
}

/// YAML read by PyYAML (yamllint's parser; merge keys and anchors resolved), as JSON objects.
enum YAML {
    static func documents(_ path: String) async throws -> [Object] {
        guard let python = await Validator.locate("python3") else { return [] }
        let program = "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None], sys.stdout)"
        let run = try await ToolRun.run(python, ["-c", program, path])
        guard run.status == 0 else {
            let missing = run.stderr.contains("No module named 'yaml'") ? " (PyYAML, yamllint's: `make test-deps` installs it)" : ""
            Issue.record("\(path) does not load\(missing): \(run.stderr)")
            return []
        }
        return try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [Object] ?? []
    }
}

/// The metric names of PromQL expressions, from promql-parser's syntax tree
/// (so the expressions must parse and type-check, Grafana's variables set).
enum PromQL {
    static func selectors(in expressions: [String]) async throws -> [(String, [String])] {
        guard let python = await Validator.locate("python3") else { return [] }
        let program = """
            import json, sys, promql_parser as p
            out = []
            for e in json.loads(sys.argv[1]):
                names = []
                q = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
                try:
                    p.walk(p.parse(q), lambda n: names.append(n.name) if isinstance(n, p.VectorSelector) else None)
                except ValueError as error:
                    sys.exit("%s: %s" % (e, error))
                out.append([e, names])
            json.dump(out, sys.stdout)
            """
        let input = String(decoding: try JSONSerialization.data(withJSONObject: expressions), as: UTF8.self)
        let run = try await ToolRun.run(python, ["-c", program, input])
        if run.stderr.contains("No module named 'promql_parser'") {
            Issue.record("promql-parser is not installed: `make test-deps` installs it")
            return []
        }
        guard run.status == 0 else {
            Issue.record("a dashboard query does not parse: \(run.stderr)")
            return []
        }
        let pairs = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [[Any]] ?? []
        return pairs.map { ($0[0] as? String ?? "", $0[1] as? [String] ?? []) }
    }
}

// MARK: - What the files are checked against

/// The long options of each service, read from the built executables' own
/// definitions (`--experimental-dump-help`), so the files are checked against
/// what the services really take; RINGSTORE_ + the name upper-cased, `-` as `_`.
enum Contract {
    static let options: [String: Set<String>] = [
        "placement": longOptions(of: "ringstore-placement"), "lock": longOptions(of: "ringstore-lock"),
        "node": longOptions(of: "ringstore-node"),
    ]
    /// What ringctl reads (its --placement, --locks, --key and --server-key).
    static let ringctlVariables: Set<String> = ["RINGSTORE_PLACEMENT", "RINGSTORE_LOCKS", "RINGSTORE_KEY", "RINGSTORE_SERVER_KEY"]

    static func variable(_ option: String) -> String { "RINGSTORE_" + option.uppercased().replacingOccurrences(of: "-", with: "_") }
    static func variables(of service: String) -> Set<String> { Set(options[service, default: []].map(variable)) }
    static var allVariables: Set<String> { options.keys.reduce(ringctlVariables) { $0.union(variables(of: $1)) } }

    /// etcd's flags as ETCD_* variables (etcd reads each flag from ETCD_ + its
    /// name upper-cased, `-` as `_`), from `etcd --help` of Debian's etcd-server,
    /// the version the deploy files pin (3.4); empty (an issue recorded) without it.
    static let etcdVariables: Set<String> = {
        guard let help = try? run("/usr/bin/etcd", ["--help"]) else {
            Issue.record("/usr/bin/etcd does not run: `make deps` installs etcd-server")
            return []
        }
        return Set(help.matches(of: /\n\s+--([a-z0-9-]+)/).map { "ETCD_" + $0.1.uppercased().replacingOccurrences(of: "-", with: "_") })
    }()

    /// The executable's long options (not --help, --version).
    private static func longOptions(of executable: String) -> Set<String> {
        let path = ServiceProcess.binDirectory.appendingPathComponent(executable).path
        guard let dump = try? run(path, ["--experimental-dump-help"]) else { return [] }
        return Set(Configuration.options(fromHelpDump: Data(dump.utf8)).map(\.name))
    }

    /// What `executable` writes to stdout, run to its end.
    private static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}

/// deploy/grafana/metrics.txt: `NAME TYPE` lines.
struct MetricList {
    let types: [String: String]

    static func read(_ path: String) throws -> MetricList {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }
        return MetricList(types: Dictionary(uniqueKeysWithValues: lines.map { line in
            let fields = line.split(separator: " ")
            return (String(fields[0]), String(fields.count > 1 ? fields[1] : ""))
        }))
    }

    /// The listed metric a series name belongs to (a histogram's `_bucket`, `_sum`, `_count`).
    func metric(for series: String) -> String? {
        if types[series] != nil && types[series] != "histogram" { return series }
        for suffix in ["_bucket", "_sum", "_count"] where series.hasSuffix(suffix) {
            let base = String(series.dropLast(suffix.count))
            if types[base] == "histogram" { return base }
        }
        return nil
    }
}

/// The contract's config file: `name = value` lines, `#` comments, strings in
/// double quotes, numbers bare, `true`/`false`.
enum FlatTOML {
    static func read(_ path: String) throws -> [(line: Int, name: String, value: String)] {
        var settings: [(line: Int, name: String, value: String)] = []
        for (index, raw) in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            guard let match = line.firstMatch(of: /^([a-z][a-z0-9-]*) = ("[^"\\]*"|-?[0-9]+(\.[0-9]+)?|true|false)$/) else {
                Issue.record("\(path):\(index + 1): not `option-name = value`: \(line)")
                continue
            }
            settings.append((index + 1, String(match.1), String(match.2).trimmingCharacters(in: CharacterSet(charactersIn: "\""))))
        }
        return settings
    }
}

// MARK: - JSON access

/// Whether a label selector matches `labels` (an empty selector matches nothing here).
func selects(_ selector: [String: String], _ labels: [String: String]) -> Bool {
    !selector.isEmpty && selector.allSatisfy { labels[$0.key] == $0.value }
}

typealias Object = [String: Any]

extension Dictionary where Key == String, Value == Any {
    func object(_ key: String) -> Object { self[key] as? Object ?? [:] }
    func array(_ key: String) -> [Object] { self[key] as? [Object] ?? [] }
    func string(_ key: String) -> String? { self[key] as? String }
    func strings(_ key: String) -> [String] { self[key] as? [String] ?? [] }
    func labels(_ key: String) -> [String: String] { self[key] as? [String: String] ?? [:] }
    var name: String { object("metadata").string("name") ?? "?" }
    var podTemplate: Object { object("spec").object("template") }
    var containers: [Object] { array("containers") }
    var portNames: [String] { array("ports").compactMap { $0.string("name") } }
    /// A container's port numbered by name.
    func containerPort(_ name: String) -> Int? { array("ports").first { $0.string("name") == name }?["containerPort"] as? Int }
    /// A container's variables with a value (not valueFrom), by name.
    var environment: [String: String] {
        [String: String](array("env").compactMap { variable in variable.string("value").map { (variable.string("name") ?? "", $0) } }) { $1 }
    }
}

/// The port of an endpoint or address: `tcp://host:7400`, `0.0.0.0:9400`, `http://h:2379`.
func port(of endpoint: String) -> Int? {
    endpoint.split(separator: ":").last.flatMap { Int($0) }
}
