import Foundation
import RPC
import Synchronization
import Testing
import TestKit
@testable import ServiceHost

/// The operations port's HTTP server on a real reactor, through real TCP
/// connections.
@Suite(.serialized) struct HTTPServerTests {
    /// Owns the server on the reactor thread, with what the test routes record.
    final class Fixture {
        let server: HTTPServer
        var stream: HTTPStream?
        init(server: HTTPServer) { self.server = server }
    }

    static let streamClosed = Mutex(0)

    func harness(limits: HTTPServer.Limits = HTTPServer.Limits()) async throws -> (ReactorHarness, UInt16) {
        let harness = try await ReactorHarness { reactor in
            let server = try HTTPServer(reactor: reactor, listen: "127.0.0.1:0", limits: limits, logger: reactor.logger)
            let fixture = Fixture(server: server)
            server.route("/hello") { request in
                .response(.text(200, "hello \(request.query["name"] ?? "nobody") from \(request.peer.isEmpty ? "?" : "a peer")"))
            }
            server.route("/stream") { [unowned fixture] _ in
                .stream(contentType: "text/event-stream") { stream in
                    fixture.stream = stream
                    stream.onClose = { HTTPServerTests.streamClosed.withLock { $0 += 1 } }
                    stream.sendEvent("first\nsecond line", event: "greeting", id: "1")
                }
            }
            server.start()
            return (fixture, server.address)
        }
        let port = try #require(UInt16(harness.endpoint.split(separator: ":").last ?? ""))
        return (harness, port)
    }

    @Test func routesAnswerAndEverythingElseGetsAClearStatus() async throws {
        let (harness, port) = try await harness()
        defer { Task { try? await harness.stop() } }
        let hello = try HTTPFetch.get(port: port, "/hello?name=ops")
        #expect(hello.status == 200 && hello.body == "hello ops from a peer\n")
        #expect(hello.headers["content-length"] == "\(hello.body.utf8.count)" && hello.headers["connection"] == "close")
        #expect(try HTTPFetch.get(port: port, "/missing").status == 404)
        #expect(try HTTPFetch.get(port: port, "/hello", method: "DELETE").status == 405)
        let head = try HTTPFetch.get(port: port, "/hello", method: "HEAD")
        #expect(head.status == 200 && head.body.isEmpty)

        let garbage = try RawConnection(port: port)
        try garbage.send("this is not http\r\n\r\n")
        #expect(try HTTPFetch.parse(garbage.readUntilClosed(timeout: .seconds(5))).status == 400)
        garbage.close()

        let huge = try RawConnection(port: port)
        try huge.send("GET /hello HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 20_000))
        #expect(try HTTPFetch.parse(huge.readUntilClosed(timeout: .seconds(5))).status == 431)
        huge.close()
    }

    @Test func aClientThatNeverFinishesItsRequestIsClosed() async throws {
        var limits = HTTPServer.Limits()
        limits.headTimeout = .milliseconds(200)
        let (harness, port) = try await harness(limits: limits)
        defer { Task { try? await harness.stop() } }
        let slow = try RawConnection(port: port)
        defer { slow.close() }
        try slow.send("GET /hello HTTP/1.1\r\n")
        let clock = ContinuousClock(), start = clock.now
        let answer = try slow.readUntilClosed(timeout: .seconds(5))
        #expect(answer.isEmpty, "closed without an answer")
        #expect(clock.now - start < .seconds(4), "closed by the sweep, not by the test's timeout")
    }

    @Test func connectionsBeyondTheLimitAreClosedAtOnce() async throws {
        var limits = HTTPServer.Limits()
        limits.maxConnections = 2
        let (harness, port) = try await harness(limits: limits)
        defer { Task { try? await harness.stop() } }
        let first = try RawConnection(port: port), second = try RawConnection(port: port)
        defer { first.close(); second.close() }
        try first.send("GET /hel")
        try second.send("GET /hel")
        let third = try RawConnection(port: port)
        defer { third.close() }
        #expect(try third.readUntilClosed(timeout: .seconds(5)).isEmpty)
        try first.send("lo HTTP/1.1\r\n\r\n")
        #expect(try HTTPFetch.parse(first.readUntilClosed(timeout: .seconds(5))).status == 200, "the ones within the limit are served")
    }

    @Test func aStreamDeliversEventsAsTheyComeAndNoticesItsClientLeave() async throws {
        let (harness, port) = try await harness()
        defer { Task { try? await harness.stop() } }
        let before = Self.streamClosed.withLock { $0 }
        let client = try RawConnection(port: port)
        try client.send("GET /stream HTTP/1.1\r\n\r\n")
        var received = ""
        try waitUntilSync("the stream's head and first event") {
            received += try client.readSome()
            return received.contains("id: 1\ndata: first\ndata: second line\n\n")
        }
        #expect(received.hasPrefix("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"))
        #expect(!received.contains("Content-Length"), "a stream has no length")
        #expect(received.contains("event: greeting\n"))
        harness.withOwner(as: Fixture.self) { fixture in fixture.stream?.sendEvent("later", event: "greeting") }
        try waitUntilSync("the later event") {
            received += try client.readSome()
            return received.contains("data: later\n\n")
        }
        client.close()
        try await waitUntil("the server to notice the client left") { Self.streamClosed.withLock { $0 } == before + 1 }
    }

    @Test func theTokenIsABearerTokenOrABasicPassword() {
        let token = Array("s3cret-token-value".utf8)
        func request(_ authorization: String?) -> HTTPRequest {
            HTTPRequest(method: "GET", path: "/metrics", query: [:], headers: authorization.map { ["authorization": $0] } ?? [:])
        }
        #expect(OperationsEndpoint.authorized(request("Bearer s3cret-token-value"), token: token))
        #expect(OperationsEndpoint.authorized(request("bearer s3cret-token-value"), token: token))
        let basic = Data("anyone:s3cret-token-value".utf8).base64EncodedString()
        #expect(OperationsEndpoint.authorized(request("Basic \(basic)"), token: token))
        #expect(!OperationsEndpoint.authorized(request(nil), token: token))
        #expect(!OperationsEndpoint.authorized(request("Bearer s3cret-token-valuX"), token: token))
        #expect(!OperationsEndpoint.authorized(request("Bearer s3cret-token-value-longer"), token: token))
        #expect(!OperationsEndpoint.authorized(request("Basic \(Data("s3cret-token-value".utf8).base64EncodedString())"), token: token))
        #expect(!OperationsEndpoint.authorized(request("Basic !!!"), token: token))
    }

    @Test func requestHeadsParse() {
        let request = HTTPRequest.parse(head: Array("GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\nX-Thing:  v \r\n".utf8))
        #expect(request?.method == "GET" && request?.path == "/a/b" && request?.query == ["x": "1", "y": ""])
        #expect(request?.headers == ["host": "h", "x-thing": "v"])
        #expect(HTTPRequest.parse(head: Array("GET /a HTTP/2\r\n".utf8)) == nil)
        #expect(HTTPRequest.parse(head: Array("GET a HTTP/1.1\r\n".utf8)) == nil)
        #expect(HTTPRequest.parse(head: Array("GET /a HTTP/1.1\r\nno colon\r\n".utf8)) == nil)
    }
}
