@testable import Etcd
import Foundation
import Testing
import TestKit

// MARK: - Watches

extension EtcdTests {
    @Suite struct Watches {
        @Test func watchSeesChangesInOrderAndResumesAfterEtcdIsKilledAndRestarted() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))

            let seed = try etcd.put(key: "w/seed", value: "0")
            try etcd.put(key: "outside", value: "not watched")
            let watch = etcd.watch(prefix: "w/", fromRevision: seed.revision)
            let collector = WatchCollector(watch)
            let a = try etcd.put(key: "w/a", value: "1")
            let b = try etcd.put(key: "w/b", value: "2")
            let deleteA = try etcd.delete(key: "w/a")
            try etcd.put(key: "x", value: "outside again")
            let both = try etcd.txn(compare: [], success: [.put("w/c", "3"), .put("w/d", "4")])

            var expected: [String] = [
                "put w/seed=0 @\(seed.revision)", "put w/a=1 @\(a.revision)", "put w/b=2 @\(b.revision)",
                "delete w/a @\(deleteA.revision)", "put w/c=3 @\(both.revision)", "put w/d=4 @\(both.revision)",
            ]
            #expect(try await collector.wait(for: expected.count).map(\.description) == expected)
            #expect(watch.isConnected)
            try await waitUntil("the watch to resume after the transaction") { watch.nextRevision == both.revision + 1 }

            // SIGKILL etcd, start it again on the same data directory, and
            // change keys at once, while the watch is still reconnecting.
            try await cluster.kill(0)
            try await cluster.restart(0)
            let e = try etcd.put(key: "w/e", value: "5")
            let deleteB = try etcd.delete(key: "w/b")
            expected += ["put w/e=5 @\(e.revision)", "delete w/b @\(deleteB.revision)"]
            try await collector.wait(for: expected.count)
            // One more change: had anything come twice, it would not be last.
            let f = try etcd.put(key: "w/f", value: "6")
            expected.append("put w/f=6 @\(f.revision)")
            #expect(try await collector.wait(for: expected.count).map(\.description) == expected)
            #expect(watch.reconnects == 1)
            #expect(watch.lastInterruption != nil)

            watch.cancel()
            try await collector.waitEnded()
            #expect(collector.error == nil)
            #expect(collector.events.count == expected.count)
            #expect(!watch.isConnected)
        }

        /// Cut off (a proxy closes its connections and refuses new ones),
        /// both a watch from a revision and one from "now" miss nothing
        /// written meanwhile, and repeat nothing, once they are let through.
        @Test func aWatchCutOffMissesNothingWrittenMeanwhile() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let proxy = try CuttableProxy(to: cluster.clientPort(0))
            defer { proxy.stop() }
            let direct = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))
            let proxied = try EtcdClient(endpoints: [proxy.endpoint], timeout: .seconds(2))

            let first = try direct.put(key: "p/a", value: "1")
            let fromRevision = proxied.watch(prefix: "p/", fromRevision: first.revision)
            let fromNow = proxied.watch(prefix: "p/")
            let sinceFirst = WatchCollector(fromRevision), sinceNow = WatchCollector(fromNow)
            try await sinceFirst.wait(for: 1)
            try await waitUntil("the watch from now to be up") { fromNow.isConnected }

            proxy.cut()
            try await waitUntil("both watches to notice the cut") { !fromRevision.isConnected && !fromNow.isConnected }
            let b = try direct.put(key: "p/b", value: "2")
            let deleteA = try direct.delete(key: "p/a")
            let both = try direct.txn(compare: [], success: [.put("p/c", "3"), .put("p/d", "4")])
            #expect(!fromRevision.isConnected && !fromNow.isConnected)
            #expect(sinceNow.events.isEmpty)
            proxy.resume()
            let e = try direct.put(key: "p/e", value: "5")

            let later = ["put p/b=2 @\(b.revision)", "delete p/a @\(deleteA.revision)", "put p/c=3 @\(both.revision)",
                         "put p/d=4 @\(both.revision)", "put p/e=5 @\(e.revision)"]
            #expect(try await sinceFirst.wait(for: 6).map(\.description) == ["put p/a=1 @\(first.revision)"] + later)
            #expect(try await sinceNow.wait(for: 5).map(\.description) == later)
            #expect(fromRevision.reconnects == 1)
            #expect(fromNow.reconnects == 1)
            fromRevision.cancel()
            fromNow.cancel()
            try await sinceFirst.waitEnded()
            try await sinceNow.waitEnded()
            #expect(sinceFirst.events.count == 6)
            #expect(sinceNow.events.count == 5)
        }

        @Test func aWatchFromACompactedRevisionEndsWithCompacted() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))

            let first = try etcd.put(key: "c/a", value: "1")
            try etcd.put(key: "c/a", value: "2")
            let third = try etcd.put(key: "c/a", value: "3")
            try etcd.compact(revision: third.revision)

            let stale = WatchCollector(etcd.watch(prefix: "c/", fromRevision: first.revision))
            try await stale.waitEnded()
            #expect(stale.error as? EtcdError == .compacted(requestedRevision: first.revision, compactRevision: third.revision))
            #expect(stale.events.isEmpty)

            // From the compaction revision on, history is still there.
            let kept = etcd.watch(prefix: "c/", fromRevision: third.revision)
            let keptEvents = WatchCollector(kept)
            #expect(try await keptEvents.wait(for: 1).map(\.description) == ["put c/a=3 @\(third.revision)"])
            kept.cancel()

            // From now (revision 0): only later changes.
            let live = etcd.watch(key: "c/a")
            let liveEvents = WatchCollector(live)
            try await waitUntil("the watch from now to be up") { live.isConnected }
            #expect(live.nextRevision == third.revision + 1)
            let fourth = try etcd.put(key: "c/a", value: "4")
            try etcd.put(key: "c/ab", value: "not this key")
            let fifth = try etcd.delete(key: "c/a")
            #expect(try await liveEvents.wait(for: 2).map(\.description) == ["put c/a=4 @\(fourth.revision)", "delete c/a @\(fifth.revision)"])
            live.cancel()
            try await liveEvents.waitEnded()
            #expect(liveEvents.events.count == 2)
        }
    }
}
