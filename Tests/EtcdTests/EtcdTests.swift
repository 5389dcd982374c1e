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
