@testable import Etcd
import Foundation
import Testing
import TestKit

/// The etcd client against real etcd 3.4 processes the tests start
/// themselves (see `EtcdCluster`), and against fake servers that answer
/// garbage. One at a time: lease expiry and failover are timed, and a
/// 3-member cluster is enough load for this machine.
@Suite(.serialized) enum EtcdTests {}

// MARK: - Keys

extension EtcdTests {
    @Suite struct Keys {
        @Test func putGetRangeDeleteAndTheirRevisions() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))

            let first = try etcd.put(key: "k/a", value: "one")
            let got = try #require(try etcd.get(key: "k/a").kv)
            #expect(got.key == "k/a")
            #expect(got.string == "one")
            #expect(got.createRevision == first.revision)
            #expect(got.modRevision == first.revision)
            #expect(got.version == 1)
            #expect(got.lease == 0)

            let second = try etcd.put(key: "k/a", value: "two")
            #expect(second.revision == first.revision + 1)
            let again = try #require(try etcd.get(key: "k/a").kv)
            #expect(again.string == "two")
            #expect(again.version == 2)
            #expect(again.createRevision == first.revision)
            #expect(again.modRevision == second.revision)

            let missing = try etcd.get(key: "k/none")
            #expect(missing.kv == nil)
            #expect(missing.revision == second.revision)

            // Any bytes as a value, non-ASCII in a key.
            let bytes = (0...255).map { UInt8($0) }
            try etcd.put(key: "k/bin/ü", value: bytes)
            #expect(try etcd.get(key: "k/bin/ü").kv?.value == bytes)

            // A prefix range holds its keys only, not the neighbours just outside it.
            try etcd.put(key: "k/b", value: "b")
            try etcd.put(key: "k0", value: "after the prefix")
            try etcd.put(key: "k", value: "the prefix without its slash")
            let last = try etcd.put(key: "j/z", value: "before the prefix")
            let range = try etcd.range(prefix: "k/")
            #expect(range.kvs.map(\.key) == ["k/a", "k/b", "k/bin/ü"])
            #expect(range.kvs.map(\.string) == ["two", "b", String(decoding: bytes, as: UTF8.self)])
            #expect(range.count == 3)
            #expect(range.revision == last.revision)
            #expect(try etcd.range(prefix: "nothing/").kvs.isEmpty)

            let deleted = try etcd.delete(key: "k/a")
            #expect(deleted.deleted == 1)
            #expect(deleted.revision == last.revision + 1)
            #expect(try etcd.get(key: "k/a").kv == nil)
            let none = try etcd.delete(key: "k/a")
            #expect(none.deleted == 0)
            #expect(none.revision == deleted.revision)
            #expect(try etcd.delete(prefix: "k/").deleted == 2)
            #expect(try etcd.range(prefix: "").kvs.map(\.key) == ["j/z", "k", "k0"])

            // etcd's error body comes through with its code and message.
            let error = try #require(throws: EtcdError.self) { try etcd.put(key: "k/x", value: "v", lease: 12345) }
            #expect(error.isLeaseNotFound)
            guard case let .server(endpoint, status, code, message) = error else {
                Issue.record("expected a server error, got \(error)")
                return
            }
            #expect(endpoint == cluster.endpoint(0))
            #expect(status == 404)
            #expect(code == EtcdError.Code.notFound)
            #expect(message == "etcdserver: requested lease not found")
        }
    }
}

// MARK: - Transactions

extension EtcdTests {
    @Suite struct Transactions {
        @Test func eachCompareKindHoldsOrFails() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))

            let created = try etcd.put(key: "t/k", value: "v1")
            let modified = try etcd.put(key: "t/k", value: "v2")
            let lease = try etcd.grant(ttl: 30)
            try etcd.put(key: "t/leased", value: "x", lease: lease.id)

            // (what, a compare that holds, one that fails)
            let cases: [(String, Compare, Compare)] = [
                ("value =", .value("t/k", .equal, "v2"), .value("t/k", .equal, "v1")),
                ("value !=", .value("t/k", .notEqual, "v1"), .value("t/k", .notEqual, "v2")),
                ("value <", .value("t/k", .less, "v3"), .value("t/k", .less, "v2")),
                ("version =", .version("t/k", .equal, 2), .version("t/k", .equal, 1)),
                ("version >", .version("t/k", .greater, 1), .version("t/k", .greater, 2)),
                ("create_revision =", .createRevision("t/k", .equal, created.revision), .createRevision("t/k", .equal, modified.revision)),
                ("create_revision <", .createRevision("t/k", .less, modified.revision), .createRevision("t/k", .less, created.revision)),
                ("mod_revision =", .modRevision("t/k", .equal, modified.revision), .modRevision("t/k", .equal, created.revision)),
                ("mod_revision >", .modRevision("t/k", .greater, created.revision), .modRevision("t/k", .greater, modified.revision)),
                ("lease =", .lease("t/leased", .equal, lease.id), .lease("t/leased", .equal, lease.id + 1)),
                ("lease none", .lease("t/k", .equal, 0), .lease("t/leased", .equal, 0)),
                ("lease !=", .lease("t/k", .notEqual, lease.id), .lease("t/leased", .notEqual, lease.id)),
            ]
            for (index, (what, holds, fails)) in cases.enumerated() {
                let out = "t/out/\(index)"
                let good = try etcd.txn(compare: [holds], success: [.put(out, "success"), .get(key: "t/k")],
                                        failure: [.put(out, "failure")])
                #expect(good.succeeded, "\(what): \(holds)")
                #expect(good.responses.count == 2, "\(what)")
                if case let .put(put) = good.responses.first { #expect(put.revision == good.revision) } else { Issue.record("\(what): \(good.responses)") }
                if case let .range(read) = good.responses.last { #expect(read.kvs.first?.string == "v2") } else { Issue.record("\(what): \(good.responses)") }
                #expect(try etcd.get(key: out).kv?.string == "success", "\(what)")

                let bad = try etcd.txn(compare: [fails], success: [.put(out, "success")],
                                       failure: [.put(out, "failure"), .delete(key: "t/nothing")])
                #expect(!bad.succeeded, "\(what): \(fails)")
                #expect(bad.responses == [.put(PutResult(revision: bad.revision)), .delete(DeleteResult(deleted: 0, revision: bad.revision))], "\(what)")
                #expect(try etcd.get(key: out).kv?.string == "failure", "\(what)")
                // Both compares together: all must hold.
                #expect(try !etcd.txn(compare: [holds, fails], success: [.put(out, "both")]).succeeded, "\(what)")
            }

            // A key that does not exist: revisions, version and lease are 0; a value compare always fails.
            #expect(try etcd.txn(compare: [.createRevision("t/absent", .equal, 0), .modRevision("t/absent", .equal, 0),
                                           .version("t/absent", .equal, 0), .lease("t/absent", .equal, 0)], success: []).succeeded)
            #expect(try !etcd.txn(compare: [.value("t/absent", .equal, "")], success: []).succeeded)
            #expect(try !etcd.txn(compare: [.value("t/absent", .notEqual, "x")], success: []).succeeded)

            // A read-only transaction, and prefix operations.
            let read = try etcd.txn(compare: [], success: [.getPrefix("t/out/")])
            if case let .range(range) = read.responses.first { #expect(range.count == Int64(cases.count)) } else { Issue.record("\(read)") }
            let cleared = try etcd.txn(compare: [], success: [.deletePrefix("t/out/")])
            #expect(cleared.responses == [.delete(DeleteResult(deleted: Int64(cases.count), revision: cleared.revision))])
        }

        /// What a leader does: take the election key if it is free, then
        /// write only while the key still has the create revision and the
        /// lease it had when it won. Once its lease ends and a rival takes
        /// the key, its guarded writes fail.
        @Test func aDeposedLeaderCannotWrite() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))

            func campaign(_ name: String, lease: Int64) throws -> TxnResult {
                try etcd.txn(compare: [.createRevision("e/leader", .equal, 0)],
                             success: [.put(key: "e/leader", value: Array(name.utf8), lease: lease)],
                             failure: [.get(key: "e/leader")])
            }
            let mine = try etcd.grant(ttl: 30)
            let won = try campaign("me", lease: mine.id)
            #expect(won.succeeded)
            let guarded: [Compare] = [.createRevision("e/leader", .equal, won.revision), .lease("e/leader", .equal, mine.id)]
            #expect(try etcd.txn(compare: guarded, success: [.put("e/state", "1")]).succeeded)

            let rivalLease = try etcd.grant(ttl: 30)
            let lost = try campaign("rival", lease: rivalLease.id)
            #expect(!lost.succeeded)
            if case let .range(holder) = lost.responses.first {
                #expect(holder.kvs.first?.string == "me")
                #expect(holder.kvs.first?.lease == mine.id)
            } else {
                Issue.record("\(lost)")
            }

            try etcd.revoke(mine.id)
            #expect(try campaign("rival", lease: rivalLease.id).succeeded)
            let late = try etcd.txn(compare: guarded, success: [.put("e/state", "2")], failure: [.get(key: "e/leader")])
            #expect(!late.succeeded)
            #expect(try etcd.get(key: "e/state").kv?.string == "1")
        }
    }
}

// MARK: - Leases

extension EtcdTests {
    @Suite struct Leases {
        @Test func aLeaseExpiresAndKeepAliveExtendsIt() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))

            let clock = ContinuousClock()
            let granted = clock.now
            let short = try etcd.grant(ttl: 1)
            let kept = try etcd.grant(ttl: 1)
            #expect(short.ttl == 1)
            #expect(short.id != kept.id)
            try etcd.put(key: "l/short", value: "s", lease: short.id)
            try etcd.put(key: "l/kept", value: "k", lease: kept.id)
            #expect(try etcd.get(key: "l/short").kv?.lease == short.id)
            let alive = try etcd.timeToLive(short.id)
            #expect(alive.keys == ["l/short"])
            #expect(alive.grantedTTL == 1)
            #expect(alive.ttl >= 0 && alive.ttl <= 1)

            // `short` is left alone and expires; `kept` is renewed meanwhile.
            try await waitUntil("l/short to expire with its lease", timeout: .seconds(6), interval: .milliseconds(100)) {
                #expect(try etcd.keepAliveOnce(kept.id).ttl == 1)
                return try etcd.get(key: "l/short").kv == nil
            }
            let expiredAfter = clock.now - granted
            #expect(expiredAfter >= .seconds(1))
            // Renewed, `kept` outlives its TTL by far: keep renewing for 2 more seconds.
            let until = clock.now + .seconds(2)
            while clock.now < until {
                #expect(try etcd.keepAliveOnce(kept.id).ttl == 1)
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(try etcd.get(key: "l/kept").kv?.string == "k")

            // An expired lease cannot be renewed: TTL 0; time-to-live says -1.
            let late = try etcd.keepAliveOnce(short.id)
            #expect(late.ttl == 0)
            #expect(late.id == short.id)
            #expect(try etcd.timeToLive(short.id).ttl == -1)

            // Revoking deletes the keys at once.
            let revoked = try etcd.revoke(kept.id)
            let gone = try etcd.get(key: "l/kept")
            #expect(gone.kv == nil)
            #expect(gone.revision == revoked.revision)
            let twice = try #require(throws: EtcdError.self) { try etcd.revoke(kept.id) }
            #expect(twice.isLeaseNotFound)
            #expect(try etcd.keepAliveOnce(kept.id).ttl == 0)
        }
    }
}

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

// MARK: - Errors

extension EtcdTests {
    @Suite struct Errors {
        /// A port nothing listens on.
        private func deadEndpoint() -> String { "127.0.0.1:\(FreePort.allocate())" }

        @Test func unreachableEndpointsAreEachNamedWithTheReason() throws {
            let dead = [deadEndpoint(), deadEndpoint()]
            let etcd = try EtcdClient(endpoints: dead, timeout: .seconds(1))
            let refused = dead.map { EndpointFailure(endpoint: $0, reason: "connect: Connection refused") }
            let read = try #require(throws: EtcdError.self) { try etcd.get(key: "k") }
            #expect(read == .unavailable(refused))
            #expect(read.description == "no etcd endpoint could serve the request: "
                + "\(dead[0]) (connect: Connection refused), \(dead[1]) (connect: Connection refused)")
            // A refused connection never carried the change: it goes to every endpoint too.
            // This call starts at the second endpoint: the first failed last time.
            let write = try #require(throws: EtcdError.self) { try etcd.put(key: "k", value: "v") }
            #expect(write == .unavailable(refused.reversed()))
            // A name (from /etc/hosts: no DNS here) is resolved, and every address it has is tried.
            let named = try EtcdClient(endpoints: ["localhost:\(FreePort.allocate())"], timeout: .seconds(1))
            let error = try #require(throws: EtcdError.self) { try named.get(key: "k") }
            #expect(error.description.contains("Connection refused"), "\(error)")
        }

        @Test func badEndpointsAreRefusedUpFront() throws {
            for (text, reason) in [("https://127.0.0.1:2379", "TLS"), ("127.0.0.1:99999", "bad port"), ("::1:2379", "brackets"),
                                   ("127.0.0.1:2379/v3", "path"), ("", "empty")] {
                let error = try #require(throws: EtcdError.self) { try EtcdClient(endpoints: [text]) }
                #expect(error.description.contains(reason), "\(text): \(error)")
            }
            #expect(throws: EtcdError.self) { try EtcdClient(endpoints: []) }
            let parsed = try EtcdClient("etcd://a:1,http://b:2/,[::1]:3,c", timeout: .seconds(1))
            #expect(parsed.endpoints == ["a:1", "b:2", "[::1]:3", "c:2379"])
        }

        @Test func aServerThatNeverAnswersTimesOut() throws {
            let silent = try FakeServer(reply: nil)
            defer { silent.stop() }
            let etcd = try EtcdClient(endpoints: [silent.endpoint], timeout: .milliseconds(300))
            let clock = ContinuousClock()
            let started = clock.now
            let read = try #require(throws: EtcdError.self) { try etcd.get(key: "k") }
            let took = clock.now - started
            #expect(read == .unavailable([EndpointFailure(endpoint: silent.endpoint, reason: "no answer in time")]))
            #expect(took >= .milliseconds(300) && took < .seconds(2), "\(took)")
            // A change that was sent and never answered is not sent again.
            let write = try #require(throws: EtcdError.self) { try etcd.put(key: "k", value: "v") }
            #expect(write == .outcomeUnknown(endpoint: silent.endpoint, reason: "no answer in time", earlier: []))
            #expect(silent.requests == 2)
        }

        @Test func garbageFromAFakeServerIsAClearErrorNotACrash() throws {
            // (what the fake answers, what the error must say) for a get.
            let cases: [(String, String)] = [
                ("SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP response: 'SSH-2.0-OpenSSH_9.2\\r\\n'"),
                ("\u{0}\u{1}\u{2}", "not an HTTP response: '\\x00\\x01\\x02'"),
                ("", "connection closed before any answer"),
                (FakeServer.http("{\"header\": nope"), "not JSON"),
                (FakeServer.http("[1, 2]"), "expected"),
                (FakeServer.http("{\"header\":{\"revision\":{}}}"), "header.revision"),
                (FakeServer.http("{\"header\":{\"revision\":\"12x\"}}"), "'12x' is not a 64-bit integer"),
                (FakeServer.http("{\"kvs\":[{\"key\":\"***\"}]}"), "bad value at kvs[0].key: not base64: '***'"),
                (FakeServer.http(status: 503, "upstream down", headers: ""), "HTTP 503: 'upstream down'"),
                (FakeServer.http(status: 500, "{\"error\":\"boom\",\"message\":\"boom\",\"code\":13}"), "HTTP 500 code 13: boom"),
                ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size line: 'zz'"),
                ("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"header\"", "connection closed after 9 of 100 bytes"),
                ("HTTP/1.1 200 OK\r\nX: " + String(repeating: "A", count: 100_000), "longer than"),
                ("HTTP/1.1 abc\r\n\r\n", "bad HTTP status line"),
            ]
            for (reply, expected) in cases {
                let fake = try FakeServer(reply)
                defer { fake.stop() }
                let etcd = try EtcdClient(endpoints: [fake.endpoint], timeout: .seconds(2))
                let error = try #require(throws: EtcdError.self) { try etcd.get(key: "k") }
                #expect(error.description.contains(expected), "answer \(reply.prefix(60).debugDescription): \(error)")
                #expect(error.description.contains(fake.endpoint))
            }
        }

        @Test func aChangeWhoseAnswerIsMangledIsNotSentAgain() throws {
            let truncated = try FakeServer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}")
            let other = try FakeServer(FakeServer.http("{\"header\":{\"revision\":\"7\"}}"))
            defer {
                truncated.stop()
                other.stop()
            }
            let etcd = try EtcdClient(endpoints: [truncated.endpoint, other.endpoint], timeout: .seconds(2))
            let error = try #require(throws: EtcdError.self) { try etcd.put(key: "k", value: "v") }
            guard case let .outcomeUnknown(endpoint, reason, earlier) = error else {
                Issue.record("expected outcomeUnknown, got \(error)")
                return
            }
            #expect(endpoint == truncated.endpoint)
            #expect(reason.contains("2 of 100 bytes"))
            #expect(earlier.isEmpty)
            #expect(other.requests == 0)
            // The next call starts at the other member, and a read would have gone on to it anyway.
            #expect(etcd.currentEndpoint == other.endpoint)
            #expect(try etcd.put(key: "k", value: "v").revision == 7)
        }

        /// etcd refuses a request with "no leader" (HTTP 503, code 14: its
        /// exact answer, copied from etcd 3.4.23) before proposing anything,
        /// so even a change goes on to the next member. Any other refusal of
        /// a change is the caller's to judge.
        @Test func aChangeRefusedForWantOfALeaderGoesToTheNextMember() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let noLeader = #"{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}"#
            let leaderless = try FakeServer(FakeServer.http(status: 503, noLeader))
            defer { leaderless.stop() }
            let etcd = try EtcdClient(endpoints: [leaderless.endpoint, cluster.endpoint(0)], timeout: .seconds(2))
            try etcd.put(key: "n", value: "1")
            #expect(etcd.currentEndpoint == cluster.endpoint(0))
            #expect(leaderless.requests == 1)

            let timedOutBody = #"{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}"#
            let timedOut = try FakeServer(FakeServer.http(status: 503, timedOutBody))
            defer { timedOut.stop() }
            let other = try EtcdClient(endpoints: [timedOut.endpoint, cluster.endpoint(0)], timeout: .seconds(2))
            let error = try #require(throws: EtcdError.self) { try other.put(key: "n", value: "2") }
            #expect(error == .server(endpoint: timedOut.endpoint, httpStatus: 503, code: 14, message: "etcdserver: request timed out"))
            // A read goes on to the next member after it.
            #expect(try other.get(key: "n").kv?.string == "1")
        }

        @Test func aGarbageEndpointIsSkippedForARealOne() async throws {
            let cluster = try await EtcdCluster.start()
            defer { cluster.shutdown() }
            let fake = try FakeServer("220 smtp.example.com ESMTP\r\n")
            defer { fake.stop() }
            let etcd = try EtcdClient(endpoints: [fake.endpoint, cluster.endpoint(0)], timeout: .seconds(2))
            try etcd.put(key: "g", value: "real")
            #expect(etcd.currentEndpoint == cluster.endpoint(0))
            #expect(try etcd.get(key: "g").kv?.string == "real")
            #expect(fake.requests == 1)
        }

        @Test func aWatchOnAGarbageStreamEndsWithAClearError() async throws {
            let chunk = "{\"result\": nope}\n"
            let hexLength = String(chunk.utf8.count, radix: 16)
            let fake = try FakeServer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\(hexLength)\r\n\(chunk)\r\n")
            defer { fake.stop() }
            let etcd = try EtcdClient(endpoints: [fake.endpoint], timeout: .seconds(2))
            let collector = WatchCollector(etcd.watch(prefix: "w/"))
            try await collector.waitEnded()
            let error = try #require(collector.error as? EtcdError)
            guard case let .malformedResponse(endpoint, path, reason, _) = error else {
                Issue.record("expected malformedResponse, got \(error)")
                return
            }
            #expect(endpoint == fake.endpoint)
            #expect(path == "/v3/watch")
            #expect(reason.contains("not JSON"))
        }
    }
}

// MARK: - Pieces

extension EtcdTests {
    @Suite struct Pieces {
        @Test func prefixRangeEnds() {
            #expect(prefixRangeEnd(Array("a/".utf8)) == Array("a0".utf8))
            #expect(prefixRangeEnd([0x61, 0xff]) == [0x62])
            #expect(prefixRangeEnd([0xff, 0xff]) == [0])
            #expect(prefixRangeEnd([]) == [0])
        }

        @Test func endpointsParse() throws {
            #expect(try Endpoint(parsing: "http://127.0.0.1:2379/").description == "127.0.0.1:2379")
            #expect(try Endpoint(parsing: "[::1]:12").description == "[::1]:12")
            #expect(try Endpoint(parsing: " host ").description == "host:2379")
            #expect(try Endpoint.list("etcd://a:1,b:2").map(\.description) == ["a:1", "b:2"])
        }
    }
}
