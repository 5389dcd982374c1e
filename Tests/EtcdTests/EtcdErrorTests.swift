@testable import Etcd
import Foundation
import Testing
import TestKit

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

        @Test func aCallWithADeadlineEndsByItWhateverTheTimeout() throws {
            let silent = try (0..<3).map { _ in try FakeServer(reply: nil) }
            defer { for server in silent { server.stop() } }
            let etcd = try EtcdClient(endpoints: silent.map(\.endpoint), timeout: .seconds(3))
            let clock = ContinuousClock()
            for call in ["keepalive", "get"] {
                let started = clock.now
                let error = try #require(throws: EtcdError.self) {
                    if call == "keepalive" {
                        try etcd.keepAliveOnce(7, before: started + .milliseconds(300))
                    } else {
                        _ = try etcd.get(key: "k", before: started + .milliseconds(300))
                    }
                }
                let took = clock.now - started
                #expect(took >= .milliseconds(300) && took < .seconds(1), "\(call) took \(took)")
                // The member tried first had until the deadline; the others were not tried.
                guard case .unavailable(let failures) = error else {
                    Issue.record("\(call): \(error)")
                    continue
                }
                #expect(failures.map(\.reason) == ["no answer in time", "not tried: the call's deadline passed",
                                                    "not tried: the call's deadline passed"], "\(call): \(error)")
            }
            #expect(silent.map(\.requests).reduce(0, +) == 2)
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
