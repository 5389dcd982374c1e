import RingstoreClient
import Testing

/// Where the cluster is: defaults, options and `RINGSTORE_*` variables, each
/// a comma-separated list of replicas.
@Suite struct ClusterEndpointsTests {
    @Test func theDefaultsAreTheLocalCluster() {
        let endpoints = ClusterEndpoints()
        #expect(endpoints.placement == ["tcp://127.0.0.1:7400"] && endpoints.placementEvents == ["tcp://127.0.0.1:7401"])
        #expect(endpoints.locks == ["tcp://127.0.0.1:7410"] && endpoints.lockEvents == ["tcp://127.0.0.1:7411"])
        #expect(endpoints.nodes == ClusterEndpoints.defaultNodes)
    }

    @Test func aListGivesEveryReplicaAndItsEventEndpoint() {
        let endpoints = ClusterEndpoints(placement: "a:7400, b:7402,,tcp://c:7404,a:7400", locks: "10.0.0.1:7410,10.0.0.2:7410")
        #expect(endpoints.placement == ["tcp://a:7400", "tcp://b:7402", "tcp://c:7404"])
        #expect(endpoints.placementEvents == ["tcp://a:7401", "tcp://b:7403", "tcp://c:7405"])
        #expect(endpoints.locks == ["tcp://10.0.0.1:7410", "tcp://10.0.0.2:7410"])
        #expect(endpoints.lockEvents == ["tcp://10.0.0.1:7411", "tcp://10.0.0.2:7411"])
    }

    @Test func theEnvironmentTakesListsAndAnOptionWins() {
        let environment = ["RINGSTORE_PLACEMENT": "p1:7400,p2:7400", "RINGSTORE_LOCKS": "l1:7410,l2:7410,l3:7410"]
        let fromEnvironment = ClusterEndpoints(environment: environment)
        #expect(fromEnvironment.placement == ["tcp://p1:7400", "tcp://p2:7400"])
        #expect(fromEnvironment.locks == ["tcp://l1:7410", "tcp://l2:7410", "tcp://l3:7410"])
        #expect(fromEnvironment.lockEvents == ["tcp://l1:7411", "tcp://l2:7411", "tcp://l3:7411"])
        let overridden = ClusterEndpoints(placement: "tcp://x:9000", environment: environment)
        #expect(overridden.placement == ["tcp://x:9000"] && overridden.placementEvents == ["tcp://x:9001"])
        #expect(overridden.locks == fromEnvironment.locks)
        // An empty list counts as absent.
        #expect(ClusterEndpoints(placement: " , ", environment: environment).placement == fromEnvironment.placement)
        #expect(ClusterEndpoints(placement: "", locks: "").placement == [ClusterEndpoints.defaultPlacement])
    }

    @Test func otherTransportsAreKeptWithTheirEventEndpointUnchanged() {
        let endpoints = ClusterEndpoints(placement: "ipc:///tmp/placement")
        #expect(endpoints.placement == ["ipc:///tmp/placement"] && endpoints.placementEvents == ["ipc:///tmp/placement"])
        #expect(ClusterEndpoints.describe(ClusterEndpoints(placement: "a:1,b:2").placement) == "tcp://a:1,tcp://b:2")
    }
}
