import Foundation
import Testing
import TestKit

/// The compose files (compose.yaml, and compose.ha.yaml with the control plane
/// replicated on etcd) against the compose specification's schema and each
/// other's names; and `make up-ha`'s command lines against the programs' options.
extension DeployValidationTests {
    @Test(arguments: Deploy.composeFiles)
    func composeFileFollowsTheSchemaAndItsReferencesResolve(file relative: String) async throws {
        let file = Deploy.path(relative)
        let schema = try await Validator.run("check-jsonschema", ["--builtin-schema", "vendor.compose-spec", file])
        #expect(schema?.status == 0, "check-jsonschema (compose-spec):\n\(schema?.output ?? "")")
        let compose = try #require(try await YAML.documents(file).first)
        let services = compose.object("services"), volumes = Set(compose.object("volumes").keys)
        let keys = services.object("keys").strings("command")
        #expect(keys.first == "ringstore-make-keys")
        let placements = services.keys.filter { services.object($0).strings("command").first == "placement" }
        #expect(!placements.isEmpty)
        var nodes = 0, hostPorts: [String] = []
        for (name, value) in services {
            let service = value as? Object ?? [:]
            for dependency in service.object("depends_on").keys {
                #expect(services[dependency] != nil, "\(name) depends on an unknown service \(dependency)")
            }
            for volume in service.strings("volumes") {
                let source = String(volume.split(separator: ":")[0])
                #expect(source.hasPrefix("/") || source.hasPrefix(".") || volumes.contains(source), "\(name): undeclared volume \(source)")
            }
            let program = service.strings("entrypoint").first == "ringctl" ? "ringctl" : service.strings("command").first ?? ""
            let environment = service.object("environment")
            let allowed = program == "ringctl" ? Contract.ringctlVariables : Contract.variables(of: program)
            for variable in environment.keys where variable.hasPrefix("RINGSTORE_") {
                #expect(allowed.contains(variable), "\(name): \(variable) is not a variable of \(program)")
            }
            // A published port is one the service listens on; a host port is published once.
            let listened = ["RINGSTORE_LISTEN", "RINGSTORE_PUBLISH", "RINGSTORE_HTTP_LISTEN", "RINGSTORE_RESP_LISTEN"].compactMap { environment.string($0).flatMap(port(of:)) }
            for published in service.strings("ports") {
                let parts = published.split(separator: ":")
                hostPorts.append(parts.dropLast().joined(separator: ":"))
                #expect(listened.contains(Int(parts.last ?? "") ?? 0), "\(name) publishes \(published), but listens on \(listened)")
            }
            guard ["placement", "lock", "node"].contains(program) else { continue }
            #expect(service.object("depends_on").object("keys").string("condition") == "service_completed_successfully", "\(name) waits for keys")
            #expect(service.object("healthcheck").strings("test").contains("ringstore-healthcheck"), "\(name): healthcheck")
            #expect(service["read_only"] as? Bool == true, "\(name): read_only")
            guard program == "node" else { continue }
            nodes += 1
            #expect(environment.string("RINGSTORE_ADVERTISE") == "\(name):7500", "\(name) is on the ring by its service name")
            #expect(environment.string("RINGSTORE_CLIENT_KEY") == "/etc/ringstore/keys/\(name).secret")
            #expect(keys.contains(name), "the keys service makes no key for \(name)")
            for placement in placements {
                let condition = service.object("depends_on").object(placement).string("condition") ?? "none"
                #expect(["service_healthy", "service_started"].contains(condition), "\(name) does not wait for \(placement)")
            }
        }
        #expect(nodes == 3)
        #expect(Set(hostPorts).count == hostPorts.count, "a host port is published twice: \(hostPorts.sorted())")
    }

    /// compose.ha.yaml: the etcd members, the placement and lock replicas, and
    /// every list of them name each other by service name at the ports they
    /// listen on; etcd is pinned, unpublished, and configured by its own flags.
    @Test func composeControlPlaneIsReplicatedOnEtcd() async throws {
        let ha = try #require(try await YAML.documents(Deploy.path("compose/compose.ha.yaml")).first)
        let plain = try #require(try await YAML.documents(Deploy.path("compose/compose.yaml")).first)
        #expect(ha.string("name") != plain.string("name"), "the two projects' volumes must not mix")
        let services = ha.object("services")
        func named(_ program: String) -> [(name: String, service: Object)] {
            services.keys.sorted().map { ($0, services.object($0)) }.filter { $0.service.strings("command").first == program }
        }
        let members = services.keys.sorted().map { ($0, services.object($0)) }.filter { ($0.1.string("image") ?? "").contains("etcd:") }
        #expect(members.count == 3)
        var clients: [String] = [], peers: [String] = []
        for (name, member) in members {
            #expect(member.string("image")?.firstMatch(of: /^\$\{ETCD_IMAGE:-quay\.io\/coreos\/etcd:v3\.4\.\d+\}$/) != nil, "\(name): a pinned 3.4 image")
            #expect(member.strings("entrypoint") == ["/usr/local/bin/etcd"])
            #expect(member["ports"] == nil, "\(name): etcd speaks plain HTTP without authentication; it must not be published")
            #expect(member["read_only"] as? Bool == true && member.strings("cap_drop") == ["ALL"], "\(name): read_only, no capabilities")
            #expect(member.object("healthcheck").strings("test").contains("endpoint"), "\(name): healthcheck")
            let environment = member.object("environment")
            for variable in environment.keys {
                #expect(Contract.etcdVariables.contains(variable), "\(name): \(variable) is not a flag of etcd 3.4")
            }
            let clientPort = port(of: environment.string("ETCD_LISTEN_CLIENT_URLS") ?? "") ?? 0
            let peerPort = port(of: environment.string("ETCD_LISTEN_PEER_URLS") ?? "") ?? 0
            #expect(environment.string("ETCD_NAME") == name)
            #expect(environment.string("ETCD_ADVERTISE_CLIENT_URLS") == "http://\(name):\(clientPort)")
            #expect(environment.string("ETCD_INITIAL_ADVERTISE_PEER_URLS") == "http://\(name):\(peerPort)")
            #expect(member.strings("volumes").contains { $0.hasSuffix(":/var/lib/etcd") } && environment.string("ETCD_DATA_DIR")?.hasPrefix("/var/lib/etcd/") == true,
                    "\(name): data on its volume")
            clients.append("\(name):\(clientPort)")
            peers.append("\(name)=http://\(name):\(peerPort)")
        }
        for (name, member) in members {
            #expect(member.object("environment").string("ETCD_INITIAL_CLUSTER") == peers.joined(separator: ","), "\(name): the initial cluster")
        }
        var endpoints: [String: [String]] = [:]
        for program in ["placement", "lock"] {
            let replicas = named(program)
            #expect(replicas.count == 3, "\(program) replicas")
            for (name, replica) in replicas {
                let environment = replica.object("environment")
                #expect(environment.string("RINGSTORE_STORE") == "etcd://" + clients.joined(separator: ","), "\(name): --store names every etcd member")
                #expect(environment["RINGSTORE_LEADER_TTL"] != nil, "\(name): --leader-ttl")
                let listen = port(of: environment.string("RINGSTORE_LISTEN") ?? "") ?? 0
                #expect(environment.string("RINGSTORE_ADVERTISE") == "tcp://\(name):\(listen)", "\(name): followers must name a reachable leader")
                for (member, _) in members {
                    #expect(replica.object("depends_on").object(member).string("condition") == "service_healthy", "\(name) waits for \(member)")
                }
                endpoints[program, default: []].append("tcp://\(name):\(listen)")
            }
        }
        let placement = endpoints["placement", default: []].joined(separator: ","), locks = endpoints["lock", default: []].joined(separator: ",")
        for (name, node) in named("node") {
            #expect(node.object("environment").string("RINGSTORE_PLACEMENT") == placement, "\(name) names every placement replica")
            #expect(node.object("environment")["RINGSTORE_PLACEMENT_EVENTS"] == nil, "\(name): events come from each replica's port + 1")
        }
        let ringctl = services.object("ringctl").object("environment")
        #expect(ringctl.string("RINGSTORE_PLACEMENT") == placement && ringctl.string("RINGSTORE_LOCKS") == locks, "ringctl names every replica")
    }

    /// `make up-ha`'s command lines, from `make -n` expanded by bash: every flag
    /// is one the program takes (etcd's: its --help); the replicas' --store, the
    /// nodes' --placement, etcd's initial cluster and .run/ha.env's lists name
    /// exactly the members and replicas started, at the ports they listen on.
    @Test func makeUpHAPassesOnlyTheProgramsOptionsAndItsListsMatch() async throws {
        var started: [String: [[String: String]]] = [:]
        for replica in 1...3 {
            // HA_ENV names a file that exists: start-node then passes the placement list.
            let run = try await Self.make(["-n", "HA_ENV=/dev/null", "M=\(replica)", "R=\(replica)", "N=1", "start-etcd", "start-placement", "start-lock", "start-node"])
            #expect(run.status == 0, "\(run.output)")
            for line in run.stdout.matches(of: /exec nohup (\S+) (.*?) >>\s/) {
                let program = (String(line.1) as NSString).lastPathComponent
                // The words the shell passes (make -n leaves $((...)) to it).
                let words = try await ToolRun.run("/bin/bash", ["-c", "printf '%s\\n' " + line.2]).stdout.split(separator: "\n").map(String.init)
                var flags: [String: String] = [:]
                for (index, word) in words.enumerated() where word.hasPrefix("--") {
                    let value = words.indices.contains(index + 1) && !words[index + 1].hasPrefix("--") ? words[index + 1] : ""
                    flags[String(word.dropFirst(2))] = value
                }
                let options = program == "etcd" ? Set(Contract.etcdVariables.map { $0.dropFirst(5).lowercased().replacingOccurrences(of: "_", with: "-") })
                                                : Contract.options[program.replacingOccurrences(of: "ringstore-", with: ""), default: []]
                #expect(!options.isEmpty, "\(program)'s options")
                for flag in flags.keys { #expect(options.contains(flag), "make up-ha passes \(program) --\(flag), which it does not take") }
                started[program, default: []].append(flags)
            }
        }
        let etcd = started["etcd", default: []], placement = started["ringstore-placement", default: []], lock = started["ringstore-lock", default: []]
        #expect(etcd.count == 3 && placement.count == 3 && lock.count == 3 && started["ringstore-node"]?.count == 3, "\(started.keys)")
        let peers = etcd.map { "\($0["name"] ?? "")=\($0["initial-advertise-peer-urls"] ?? "")" }.joined(separator: ",")
        let clients = etcd.map { ($0["advertise-client-urls"] ?? "").replacingOccurrences(of: "http://", with: "") }
        for member in etcd {
            #expect(member["initial-cluster"] == peers && member["listen-peer-urls"] == member["initial-advertise-peer-urls"])
            #expect(member["listen-client-urls"] == member["advertise-client-urls"])
        }
        var ports = etcd.flatMap { [$0["listen-client-urls"], $0["listen-peer-urls"]] }.compactMap { $0.flatMap(port(of:)) }
        #expect(!ports.contains(2379) && !ports.contains(2380), "the ports a packaged etcd may hold")
        for (service, replicas) in [("placement", placement), ("lock", lock)] {
            for (index, replica) in replicas.enumerated() {
                let listen = port(of: replica["listen"] ?? "") ?? 0
                #expect(replica["store"] == "etcd://" + clients.joined(separator: ","), "\(service) \(index + 1): --store")
                #expect(port(of: replica["publish"] ?? "") == listen + 1 && port(of: replica["http-listen"] ?? "") == listen + 2000, "\(service) \(index + 1)")
                #expect(replica["data-dir"]?.hasSuffix("/\(service)-\(index + 1)") == true && replica["leader-ttl"] != nil)
                ports += [listen, listen + 1, listen + 2000]
            }
        }
        #expect(Set(ports).count == ports.count, "every port once: \(ports.sorted())")
        let placementList = placement.compactMap { $0["listen"] }.joined(separator: ","), lockList = lock.compactMap { $0["listen"] }.joined(separator: ",")
        #expect(placementList == "tcp://127.0.0.1:7400,tcp://127.0.0.1:7402,tcp://127.0.0.1:7404", "DESIGN.md's ports")
        #expect(started["ringstore-node", default: []].allSatisfy { $0["placement"] == placementList }, "a node names every placement replica")
        #expect(started["ringstore-node", default: []].allSatisfy { $0["data-dir"]?.hasSuffix("/ha/node-1") == true }, "not make up's node data")
        // .run/ha.env exports HA_PLACEMENT and HA_LOCKS.
        let lists = try await Self.make(["-s", "--eval", "lists: ; @echo $(HA_PLACEMENT) $(HA_LOCKS)", "lists"])
        #expect(lists.stdout == "\(placementList) \(lockList)\n", "\(lists.output)")
    }

    /// make in the package root with the tests' binaries (so `binaries` builds
    /// nothing), without an outer make's flags (its jobserver).
    private static func make(_ arguments: [String]) async throws -> ToolRun {
        try await ToolRun.run("/usr/bin/env", ["make", "--no-print-directory", "-C", Deploy.root.path, "SWIFT=true", "bin=\(ServiceProcess.binDirectory.path)"] + arguments,
                              environment: ["MAKEFLAGS": "", "MFLAGS": ""])
    }
}
