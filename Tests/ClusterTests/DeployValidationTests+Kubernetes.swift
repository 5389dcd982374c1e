import Foundation
import Testing
import TestKit

/// The Kubernetes layouts, deploy/kubernetes and deploy/kubernetes/ha (the
/// control plane replicated on etcd): what kubernetes-validate's schemas do
/// not see. Images, ConfigMaps, Services, selectors, volumes, ports, probes,
/// budgets and every name one manifest gives another must resolve, and each
/// RINGSTORE_* or ETCD_* variable must be an option of the program it reaches.
extension DeployValidationTests {
    @Test(arguments: Deploy.kubernetesLayouts)
    func kustomizationListsEveryManifestButTheJobAndSetsEveryImage(layout: String) async throws {
        let kustomization = try await YAML.documents(Deploy.path("\(layout)/kustomization.yaml")).first ?? [:]
        let listed = Set(kustomization.strings("resources"))
        let manifests = Set(Deploy.kubernetesManifests(in: layout).map { ($0 as NSString).lastPathComponent })
        #expect(manifests.contains("ringctl-job.yaml"), "\(layout)")
        #expect(listed == manifests.subtracting(["ringctl-job.yaml"]), "\(layout)")
        // Each image is one the kustomization sets, at the tag it sets (kustomize edit set image changes both).
        let images = Dictionary(kustomization.array("images").map { ($0.string("name") ?? "", "\($0.string("newName") ?? ""):\($0.string("newTag") ?? "")") }) { $1 }
        for workload in try await Kubernetes.documents(layout).filter(\.isWorkload) {
            let pod = workload.podTemplate.object("spec")
            for container in pod.array("initContainers") + pod.containers {
                let image = container.string("image") ?? ""
                let name = String(image[..<(image.lastIndex(of: ":") ?? image.endIndex)])
                #expect(images[name] == image, "\(layout): \(workload.name) runs \(image), the kustomization sets \(images[name] ?? "nothing")")
            }
        }
    }

    @Test(arguments: Deploy.kubernetesLayouts)
    func kubernetesReferencesResolve(layout: String) async throws {
        let documents = try await Kubernetes.documents(layout)
        let services = documents.filter { $0.string("kind") == "Service" }
        let workloads = documents.filter(\.isWorkload)
        let expected = ["ringstore-placement", "ringstore-lock", "ringstore-node", "ringstore-ringctl"] + (layout.hasSuffix("/ha") ? ["ringstore-etcd"] : [])
        #expect(Set(workloads.map(\.name)) == Set(expected), "\(layout)")
        for document in documents {
            #expect(document.object("metadata")["namespace"] == nil, "\(document.name) names a namespace")
        }
        // A ConfigMap's variables reach every container that takes it whole (envFrom): each must be an option of each.
        let configMaps = documents.filter { $0.string("kind") == "ConfigMap" }
        for config in configMaps {
            let takers = workloads.flatMap { $0.podTemplate.object("spec").containers }.filter { container in
                container.array("envFrom").contains { $0.object("configMapRef").string("name") == config.name }
            }
            #expect(!takers.isEmpty, "\(layout): no container takes ConfigMap \(config.name)")
            for container in takers {
                let program = container.strings("args").first ?? ""
                for key in config.object("data").keys {
                    #expect(Contract.variables(of: program).contains(key), "ConfigMap \(config.name): \(key) is not an option of \(program)")
                }
            }
        }
        for workload in workloads { checkWorkload(workload, services: services, configMaps: Set(configMaps.map(\.name))) }
        for service in services {
            let selector = service.object("spec").labels("selector")
            let pods = workloads.map(\.podTemplate).filter { selects(selector, $0.object("metadata").labels("labels")) }
            #expect(!pods.isEmpty, "Service \(service.name) selects no pods")
            for port in service.object("spec").array("ports") {
                guard let target = port["targetPort"] as? String else { continue }
                #expect(pods.contains { $0.object("spec").containers.contains { $0.portNames.contains(target) } },
                        "Service \(service.name): no selected container has a port named \(target)")
            }
        }
        let nodes = try #require(workloads.first { $0.name == "ringstore-node" })
        let headless = try #require(services.first { $0.name == nodes.object("spec").string("serviceName") })
        #expect(headless.object("spec").string("clusterIP") == "None")
        #expect(headless.object("spec")["publishNotReadyAddresses"] as? Bool == true)
        let advertise = try #require(nodes.podTemplate.object("spec").containers.first).environment["RINGSTORE_ADVERTISE"]
        #expect(advertise == "$(POD_NAME).\(headless.name).$(POD_NAMESPACE).svc.cluster.local:7500")
        // Every budget covers one StatefulSet's pods: the nodes one at a time, a control-plane service keeping a majority.
        let budgets = documents.filter { $0.string("kind") == "PodDisruptionBudget" }
        #expect(budgets.contains { $0.name == "ringstore-node" })
        for budget in budgets {
            let selector = budget.object("spec").object("selector").labels("matchLabels")
            let covered = workloads.filter { $0.object("spec").object("selector").labels("matchLabels") == selector }
            #expect(covered.count == 1 && covered.first?.string("kind") == "StatefulSet", "PodDisruptionBudget \(budget.name) covers \(covered.map(\.name))")
            let replicas = covered.first?.object("spec")["replicas"] as? Int ?? 0
            if budget.name == nodes.name {
                #expect(budget.object("spec")["maxUnavailable"] as? Int == 1)
            } else {
                let minimum = budget.object("spec")["minAvailable"] as? Int ?? 0
                #expect(minimum > replicas / 2 && minimum < replicas, "\(budget.name): minAvailable \(minimum) of \(replicas)")
            }
        }
    }

    /// deploy/kubernetes/ha: etcd's members, the placement and lock replicas, and
    /// every list of them (RINGSTORE_STORE, the nodes' and ringctl's endpoints,
    /// etcd's initial cluster) name exactly the pods the StatefulSets make,
    /// by their names under the headless Services, at the ports they listen on.
    @Test func kubernetesControlPlaneIsReplicatedOnEtcd() async throws {
        let documents = try await Kubernetes.documents("kubernetes/ha")
        let etcd = try #require(documents.first { $0.name == "ringstore-etcd" && $0.string("kind") == "StatefulSet" })
        let etcdContainer = try #require(etcd.podTemplate.object("spec").containers.first)
        let clientPort = try #require(etcdContainer.containerPort("client")), peerPort = try #require(etcdContainer.containerPort("peer"))
        let etcdPods = try Kubernetes.pods(of: etcd, in: documents)
        let fqdn = "$(POD_NAME).\(etcd.object("spec").string("serviceName") ?? "").$(POD_NAMESPACE).svc.cluster.local"
        let environment = etcdContainer.environment
        #expect(environment["ETCD_NAME"] == "$(POD_NAME)")
        #expect(environment["ETCD_ADVERTISE_CLIENT_URLS"] == "http://\(fqdn):\(clientPort)")
        #expect(environment["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "http://\(fqdn):\(peerPort)")
        let members = etcdPods.map { "\($0.name)=http://\($0.host).$(POD_NAMESPACE).svc.cluster.local:\(peerPort)" }
        #expect(environment["ETCD_INITIAL_CLUSTER"] == members.joined(separator: ","))
        #expect(environment["ETCD_INITIAL_CLUSTER_STATE"] == "new")
        #expect(port(of: environment["ETCD_LISTEN_CLIENT_URLS"] ?? "") == clientPort && port(of: environment["ETCD_LISTEN_PEER_URLS"] ?? "") == peerPort)
        #expect(etcdContainer.string("image")?.firstMatch(of: /^quay\.io\/coreos\/etcd:v3\.4\.\d+$/) != nil, "etcd is pinned to a 3.4 release")

        let store = "etcd://" + etcdPods.map { "\($0.host):\(clientPort)" }.joined(separator: ",")
        var endpoints: [String: String] = [:]
        for name in ["ringstore-placement", "ringstore-lock"] {
            let replicas = try #require(documents.first { $0.name == name && $0.string("kind") == "StatefulSet" })
            let container = try #require(replicas.podTemplate.object("spec").containers.first)
            let router = try #require(container.containerPort("router"))
            let service = replicas.object("spec").string("serviceName") ?? ""
            #expect(container.environment["RINGSTORE_ADVERTISE"] == "tcp://$(POD_NAME).\(service).$(POD_NAMESPACE).svc.cluster.local:\(router)",
                    "\(name): followers must name a reachable leader")
            // The etcd settings come from a ConfigMap the container takes.
            let taken = container.array("envFrom").compactMap { $0.object("configMapRef").string("name") }
            let settings = documents.filter { $0.string("kind") == "ConfigMap" && taken.contains($0.name) }.map { $0.object("data") }
            #expect(settings.compactMap { $0.string("RINGSTORE_STORE") } == [store], "\(name): --store names every etcd member")
            #expect(settings.compactMap { $0["RINGSTORE_LEADER_TTL"] as? String }.count == 1, "\(name): --leader-ttl")
            endpoints[name] = try Kubernetes.pods(of: replicas, in: documents).map { "tcp://\($0.host):\(router)" }.joined(separator: ",")
        }
        let nodes = try #require(documents.first { $0.name == "ringstore-node" && $0.isWorkload }?.podTemplate.object("spec").containers.first)
        #expect(nodes.environment["RINGSTORE_PLACEMENT"] == endpoints["ringstore-placement"], "the nodes name every placement replica")
        #expect(nodes.environment["RINGSTORE_PLACEMENT_EVENTS"] == nil, "events come from each replica's port + 1")
        let ringctl = try #require(documents.first { $0.name == "ringstore-ringctl" && $0.isWorkload }?.podTemplate.object("spec").containers.first)
        #expect(ringctl.environment["RINGSTORE_PLACEMENT"] == endpoints["ringstore-placement"])
        #expect(ringctl.environment["RINGSTORE_LOCKS"] == endpoints["ringstore-lock"])
    }

    /// A StatefulSet's or Job's pods: selector, mounts, security, resources,
    /// probes, ports, and the variables of the program the container runs.
    private func checkWorkload(_ workload: Object, services: [Object], configMaps: Set<String>) {
        let spec = workload.object("spec"), pod = workload.podTemplate.object("spec")
        let labels = workload.podTemplate.object("metadata").labels("labels")
        if workload.string("kind") == "StatefulSet" {
            #expect(selects(spec.object("selector").labels("matchLabels"), labels), "\(workload.name): selector")
            #expect(services.contains { $0.name == spec.string("serviceName") }, "\(workload.name): no Service \(spec.string("serviceName") ?? "")")
            if (spec["replicas"] as? Int ?? 1) > 1 && workload.name != "ringstore-node" {
                // A replica (an etcd member, a follower) may wait for the others to be ready: start them together.
                #expect(spec.string("podManagementPolicy") == "Parallel", "\(workload.name): podManagementPolicy")
                let service = services.first { $0.name == spec.string("serviceName") }?.object("spec") ?? [:]
                #expect(service.string("clusterIP") == "None" && service["publishNotReadyAddresses"] as? Bool == true,
                        "\(workload.name): each replica's name must resolve before it is ready")
            }
        }
        #expect(pod.object("securityContext")["runAsNonRoot"] as? Bool == true, "\(workload.name): runAsNonRoot")
        let volumes = Set(pod.array("volumes").compactMap { $0.string("name") }
                          + spec.array("volumeClaimTemplates").compactMap { $0.object("metadata").string("name") })
        for container in pod.array("initContainers") + pod.containers {
            let name = "\(workload.name)/\(container.string("name") ?? "?")"
            for mount in container.array("volumeMounts") {
                #expect(volumes.contains(mount.string("name") ?? ""), "\(name) mounts an undeclared volume \(mount.string("name") ?? "")")
            }
            let security = container.object("securityContext")
            #expect(security["readOnlyRootFilesystem"] as? Bool == true, "\(name): readOnlyRootFilesystem")
            #expect(security["allowPrivilegeEscalation"] as? Bool == false, "\(name): allowPrivilegeEscalation")
            #expect(security.object("capabilities").strings("drop") == ["ALL"], "\(name): capabilities")
            #expect(!container.object("resources").object("limits").isEmpty, "\(name): resource limits")
            // $(VAR) expands only variables defined earlier in the list.
            let names = container.array("env").compactMap { $0.string("name") }
            for (index, variable) in container.array("env").enumerated() {
                for match in (variable.string("value") ?? "").matches(of: /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/) {
                    #expect(names.prefix(index).contains(String(match.1)), "\(name): \(names[index]) uses $(\(match.1)) before it is defined")
                }
            }
            for reference in container.array("envFrom").compactMap({ $0.object("configMapRef").string("name") }) {
                #expect(configMaps.contains(reference), "\(name) takes ConfigMap \(reference), which the layout does not define")
            }
        }
        for container in pod.containers {
            let image = container.string("image") ?? ""
            if image.contains("/etcd:") {
                checkEtcdContainer(container, of: workload.name)
            } else {
                checkRingstoreContainer(container, of: workload)
            }
        }
    }

    private func checkRingstoreContainer(_ container: Object, of workload: Object) {
        let program = container.strings("args").first ?? ""
        let allowed = program == "ringctl" ? Contract.ringctlVariables : Contract.variables(of: program)
        #expect(container.string("image")?.hasPrefix("ringstore:") == true, "\(workload.name): image")
        for variable in container.array("env").compactMap({ $0.string("name") }) where variable.hasPrefix("RINGSTORE_") {
            #expect(allowed.contains(variable), "\(workload.name): \(variable) is not a variable of \(program)")
        }
        guard program != "ringctl" else { return }
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = container.object(probe).object("httpGet")
            #expect(get.string("path") == path, "\(workload.name): \(probe) path")
            #expect(container.portNames.contains(get["port"] as? String ?? ""), "\(workload.name): \(probe) port")
        }
        // Each named port is the one the program listens on, and Prometheus scrapes the HTTP one.
        let environment = container.environment
        for (variable, portName) in [("RINGSTORE_LISTEN", "router"), ("RINGSTORE_PUBLISH", "pub"), ("RINGSTORE_HTTP_LISTEN", "http"), ("RINGSTORE_RESP_LISTEN", "resp")] {
            let listened = environment[variable].flatMap(port(of:))
            #expect(listened == container.containerPort(portName), "\(workload.name): \(variable) \(environment[variable] ?? "unset"), port \(portName)")
        }
        let annotation = workload.podTemplate.object("metadata").labels("annotations")["prometheus.io/port"]
        #expect(annotation.flatMap { Int($0) } == container.containerPort("http"), "\(workload.name): prometheus.io/port")
    }

    private func checkEtcdContainer(_ container: Object, of workload: String) {
        #expect(container.strings("command") == ["/usr/local/bin/etcd"], "\(workload): etcd's path in its image")
        for variable in container.array("env").compactMap({ $0.string("name") }) where variable.hasPrefix("ETCD_") {
            #expect(Contract.etcdVariables.contains(variable), "\(workload): \(variable) is not a flag of etcd 3.4")
        }
        for probe in ["livenessProbe", "readinessProbe"] {
            let target = container.object(probe).object("httpGet")["port"] ?? container.object(probe).object("tcpSocket")["port"]
            #expect(container.portNames.contains(target as? String ?? ""), "\(workload): \(probe) port")
        }
        #expect(container.object("readinessProbe").object("httpGet").string("path") == "/health", "\(workload): ready when the cluster has a leader")
    }
}

/// A Kubernetes layout's documents, and the pods a StatefulSet makes.
enum Kubernetes {
    static func documents(_ layout: String) async throws -> [Object] {
        var documents: [Object] = []
        for file in Deploy.kubernetesManifests(in: layout) { documents += try await YAML.documents(file) }
        return documents
    }

    /// Pod NAME-I for I below replicas, and its name under the StatefulSet's Service (in the namespace's DNS search path).
    static func pods(of statefulSet: Object, in documents: [Object]) throws -> [(name: String, host: String)] {
        let service = try #require(statefulSet.object("spec").string("serviceName"))
        #expect(documents.contains { $0.string("kind") == "Service" && $0.name == service })
        let replicas = statefulSet.object("spec")["replicas"] as? Int ?? 1
        #expect(replicas == 3, "\(statefulSet.name): replicas")
        return (0..<replicas).map { ("\(statefulSet.name)-\($0)", "\(statefulSet.name)-\($0).\(service)") }
    }
}

extension Dictionary where Key == String, Value == Any {
    var isWorkload: Bool { ["StatefulSet", "Job"].contains(string("kind")) }
}
