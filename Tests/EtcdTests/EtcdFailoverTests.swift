@testable import Etcd
import Foundation
import Testing
import TestKit

// MARK: - Failover

extension EtcdTests {
    @Suite struct Failover {
        @Test func requestsAndAWatchGoOnThroughTheOthersWhenMembersAreKilled() async throws {
            let cluster = try await EtcdCluster.start(size: 3)
            defer { cluster.shutdown() }
            let probe = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))
            let leader = try cluster.leaderIndex(client: probe)
            let follower = (leader + 1) % 3
            // The client prefers the follower: it is listed first.
            let order = [follower] + (0..<3).filter { $0 != follower }
            let etcd = try EtcdClient(endpoints: order.map { cluster.endpoint($0) }, timeout: .seconds(2))

            let start = try etcd.put(key: "f/0", value: "0")
            #expect(etcd.currentEndpoint == cluster.endpoint(follower))
            let watch = etcd.watch(prefix: "f/", fromRevision: start.revision)
            let collector = WatchCollector(watch)
            try await collector.wait(for: 1)
            #expect(watch.endpoint == cluster.endpoint(follower))

            // A follower dies: every request goes on at once through the others.
            try await cluster.kill(follower)
            for i in 1...20 {
                try etcd.put(key: "f/\(i)", value: "\(i)")
                #expect(try etcd.get(key: "f/\(i)").kv?.string == "\(i)")
            }
            #expect(etcd.currentEndpoint != cluster.endpoint(follower))
            let seen = try await collector.wait(for: 21)
            #expect(seen.map(\.key) == (0...20).map { "f/\($0)" })
            #expect(watch.reconnects == 1)
            #expect(watch.endpoint != cluster.endpoint(follower))

            // It comes back; then the raft leader dies. Until the two others
            // elect a new one, requests fail with "no leader" or time out;
            // then they work again.
            try await cluster.restart(follower)
            try await cluster.kill(leader)
            let clock = ContinuousClock()
            let killed = clock.now
            var failures: [EtcdError] = []
            try await waitUntil("a write to work after the leader was killed", timeout: .seconds(15), interval: .milliseconds(20)) {
                do {
                    try etcd.put(key: "f/after", value: "x")
                    return true
                } catch let error as EtcdError {
                    failures.append(error)
                    return false
                }
            }
            let gap = clock.now - killed
            for failure in failures {
                switch failure {
                case .unavailable, .outcomeUnknown: break
                case let .server(_, _, code, _) where code == EtcdError.Code.unavailable: break
                default: Issue.record("unexpected failure after the leader was killed: \(failure)")
                }
            }
            for i in 21...40 {
                try etcd.put(key: "f/\(i)", value: "\(i)")
                #expect(try etcd.get(key: "f/\(i)").kv?.string == "\(i)")
            }
            #expect(etcd.currentEndpoint != cluster.endpoint(leader))
            let all = try await collector.wait(for: 42, timeout: .seconds(15))
            #expect(all.map(\.key).suffix(20) == (21...40).map { "f/\($0)" })
            let revisions = all.map(\.modRevision)
            #expect(revisions == revisions.sorted() && Set(revisions).count == revisions.count, "\(revisions)")
            print("etcd failover: a write worked again \(gap) after the leader was killed; failures meanwhile: \(failures.map(\.description))")
            watch.cancel()
        }

        /// A member cut off from the majority refuses at once ("no leader",
        /// thanks to the hasleader metadata the client sends) instead of
        /// holding each request for etcd's own 6 s timeout, and ends the
        /// watch streams it serves; when the majority is back, so is the client.
        @Test func aMemberWithoutQuorumRefusesAtOnceAndEndsItsWatches() async throws {
            let cluster = try await EtcdCluster.start(size: 3)
            defer { cluster.shutdown() }
            let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(5))
            let start = try etcd.put(key: "q/0", value: "0")
            #expect(etcd.currentEndpoint == cluster.endpoint(0))
            let watch = etcd.watch(prefix: "q/", fromRevision: start.revision)
            let collector = WatchCollector(watch)
            try await collector.wait(for: 1)
            #expect(watch.endpoint == cluster.endpoint(0))

            try await cluster.kill(1)
            try await cluster.kill(2)
            let survivor = try EtcdClient(endpoints: [cluster.endpoint(0)], timeout: .seconds(5))
            try await waitUntil("member 1 to see it has no leader", timeout: .seconds(10), interval: .milliseconds(50)) {
                try survivor.status(of: cluster.endpoint(0)).leaderID == 0
            }
            let clock = ContinuousClock()
            let asked = clock.now
            let refused = try #require(throws: EtcdError.self) { try etcd.get(key: "q/0") }
            #expect(clock.now - asked < .seconds(1))
            guard case let .unavailable(failures) = refused else {
                Issue.record("expected unavailable, got \(refused)")
                return
            }
            #expect(failures.first { $0.endpoint == cluster.endpoint(0) }?.reason == "etcdserver: no leader", "\(failures)")
            #expect(throws: EtcdError.self) { try etcd.put(key: "q/1", value: "1") }
            try await waitUntil("the watch stream to be ended by the leaderless member", timeout: .seconds(10)) { !watch.isConnected }

            try await cluster.restart(1)
            try await cluster.restart(2)
            let back = try etcd.put(key: "q/1", value: "1")
            #expect(try await collector.wait(for: 2).map(\.description) == ["put q/0=0 @\(start.revision)", "put q/1=1 @\(back.revision)"])
            #expect(watch.reconnects >= 1)
            watch.cancel()
        }
    }
}
