import Foundation
import Glibc
import RingProtocol
import Testing
import TestKit

/// The RESP front door of real nodes (CURVE on the cluster, AUTH on RESP),
/// driven by clients nobody here wrote: redis-cli, redis-benchmark and the
/// Python redis package.
@Suite(.serialized) struct RESPProcessTests {
    static let redisCLI = "/usr/bin/redis-cli"
    static let redisBenchmark = "/usr/bin/redis-benchmark"

    /// A settled three-node cluster whose nodes serve RESP.
    static func cluster() async throws -> LocalCluster {
        let cluster = try LocalCluster(nodes: 3)
        try cluster.serveRESP()
        try await cluster.startAndSettle()
        return cluster
    }

    /// redis-cli against node `index` with the cluster's password.
    static func cli(_ cluster: LocalCluster, _ index: Int, _ arguments: [String], stdin: String? = nil,
                    password: String?? = .none) async throws -> ToolRun {
        let secret = password ?? cluster.respPassword
        return try await ToolRun.run(redisCLI, ["-p", "\(cluster.respPorts[index])", "--no-auth-warning"]
                                     + (secret.map { ["-a", $0] } ?? []) + arguments, stdin: stdin, timeout: .seconds(60))
    }

    /// One command's output, trimmed; a failed run is recorded.
    static func reply(_ cluster: LocalCluster, _ index: Int, _ arguments: String...) async throws -> String {
        try await reply(cluster, index, arguments)
    }

    static func reply(_ cluster: LocalCluster, _ index: Int, _ arguments: [String]) async throws -> String {
        let run = try await cli(cluster, index, arguments)
        return run.stdout.trimmingCharacters(in: .newlines)
    }

    @Test func everyCommandThroughRedisCliAndDataCrossesToRingctl() async throws {
        let cluster = try await Self.cluster()

        // AUTH first: nothing without it, nothing with a wrong password.
        let anonymous = try await Self.cli(cluster, 0, ["ping"], password: .some(nil))
        #expect(anonymous.stdout.contains("NOAUTH"), "\(anonymous.stdout)\(anonymous.stderr)")
        let wrong = try await Self.cli(cluster, 0, ["ping"], password: "not-the-password")
        #expect((wrong.stdout + wrong.stderr).contains("WRONGPASS"), "\(wrong.stdout)\(wrong.stderr)")

        let expectations: [([String], String)] = [
            (["ping"], "PONG"), (["echo", "hello there"], "hello there"), (["select", "0"], "OK"),
            (["set", "k", "v"], "OK"), (["get", "k"], "v"), (["set", "k", "other", "nx"], ""),
            (["set", "k", "v2", "xx", "get"], "v"), (["set", "fresh", "x", "xx"], ""), (["get", "fresh"], ""),
            (["set", "new", "n", "nx"], "OK"), (["strlen", "k"], "2"), (["mset", "a", "1", "b", "2"], "OK"),
            (["mget", "a", "b", "nope"], "1\n2"), (["exists", "a", "b", "nope", "a"], "3"), (["getdel", "new"], "n"),
            (["get", "new"], ""), (["del", "a", "b", "nope"], "2"), (["exists", "a"], "0"),
        ]
        for (arguments, expected) in expectations {
            let got = try await Self.reply(cluster, 0, arguments)
            #expect(got == expected, "\(arguments): \(got.debugDescription)")
        }
        // One connection: CLIENT SETNAME then GETNAME (each redis-cli run is its own connection).
        let session = try await Self.cli(cluster, 1, [], stdin: "client setname tester\nclient getname\nclient id\nselect 1\n")
        let lines = session.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4 && lines[0] == "OK" && lines[1] == "tester" && Int(lines[2]) != nil && lines[3].contains("out of range"),
                "\(session.stdout)")
        // Any node coordinates: what node 0 wrote, node 2 reads.
        #expect(try await Self.reply(cluster, 2, "get", "k") == "v2")
        #expect(try await Self.reply(cluster, 1, "set", "k", "v", "ex", "10").contains("no expiry"))
        #expect(try await Self.reply(cluster, 1, "frobnicate", "x").contains("unknown command 'frobnicate'"))
        #expect(try await Self.reply(cluster, 1, "config", "get", "appendonly") == "appendonly\nyes")
        #expect(Int(try await Self.reply(cluster, 1, "command", "count")) ?? 0 >= 19)
        #expect(try await Self.reply(cluster, 1, "command", "docs", "get").contains("summary"))
        let info = try await Self.reply(cluster, 1, "info")
        #expect(info.contains("redis_version:") && info.contains("ringstore_n:3") && info.contains("ringstore_w:2")
                && info.contains("connected_clients:"), "\(info)")
        let hello = try await Self.reply(cluster, 1, "hello", "3")
        #expect(hello.contains("proto") && hello.contains("3"), "\(hello)")

        // RESP and ringctl see the same data.
        let put = try await ToolRun.run("ringctl", ["put", "from-ringctl", "hello"] + cluster.ringctlTarget())
        #expect(put.status == 0, "\(put.stderr)")
        #expect(try await Self.reply(cluster, 1, "get", "from-ringctl") == "hello")
        #expect(try await Self.reply(cluster, 0, "set", "from-redis", "world") == "OK")
        let get = try await ToolRun.run("ringctl", ["get", "from-redis"] + cluster.ringctlTarget())
        #expect(get.status == 0 && get.stdout == "world\n", "\(get.stdout)\(get.stderr)")

        // redis-cli --pipe: 10,000 commands in one stream, every reply counted.
        var pipe = ""
        for number in 0..<10_000 { pipe += "*3\r\n$3\r\nSET\r\n$\(4 + "\(number)".count)\r\npipe\(number)\r\n$\("\(number)".count)\r\n\(number)\r\n" }
        let piped = try await Self.cli(cluster, 2, ["--pipe"], stdin: pipe)
        #expect(piped.stdout.contains("errors: 0, replies: 10000"), "\(piped.stdout)\(piped.stderr)")
        #expect(try await Self.reply(cluster, 0, "get", "pipe9999") == "9999")
        #expect(Int(try await Self.reply(cluster, 0, "dbsize")) ?? 0 >= 10_000)
        try await cluster.stop()
    }

    @Test func thePythonRedisClientWorksInRESP2AndRESP3() async throws {
        let cluster = try await Self.cluster()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("resp_clients.py").path
        let run = try await ToolRun.run("/usr/bin/env", ["python3", script, "\(cluster.respPorts[1])", cluster.respPassword ?? ""],
                                        timeout: .seconds(120))
        #expect(run.status == 0 && run.stdout.contains("all ok"), "\(run.stdout)\(run.stderr)")
        try await cluster.stop()
    }

    @Test func redisBenchmarkRunsThroughANodeKilledMidRun() async throws {
        let cluster = try await Self.cluster()
        // Node 0 coordinates; node 2, one of every key's three replicas, dies
        // with -9 while the benchmark runs. W=2 and R=2 are still met, so no
        // request may fail.
        let benchmark = try ServiceProcess(Self.redisBenchmark, [
            "-p", "\(cluster.respPorts[0])", "-a", cluster.respPassword ?? "", "-t", "set,get,mset", "-n", "20000",
            "-c", "16", "-r", "5000", "-q",
        ])
        try await waitUntil("the benchmark to write", timeout: .seconds(60)) {
            Int(try await Self.reply(cluster, 1, "dbsize")) ?? 0 > 100
        }
        kill(cluster.node(2).pid, SIGKILL)
        let status = try await benchmark.waitForExit(timeout: .seconds(300))
        let output = benchmark.log
        #expect(status == 0, "\(output)")
        #expect(!output.contains("Error") && !output.contains("ERR") && !output.contains("TRYAGAIN"), "\(output)")
        for test in ["SET", "GET", "MSET"] { #expect(output.contains("\(test)"), "\(test) ran: \(output)") }
        try await cluster.stop()
    }

    @Test func badInputGetsAnErrorOrAClosedConnectionAndTheNodeKeepsServing() async throws {
        let cluster = try await Self.cluster()
        let port = cluster.respPorts[0]
        let password = try #require(cluster.respPassword)
        let auth = "AUTH \(password)\r\n"

        // Broken framing and a 1 GB bulk length: an error, then the connection closes.
        for (input, expected) in [("*2\r\n$3\r\nGET\r\n:1\r\n", "-ERR Protocol error: expected '$'"),
                                  ("*2\r\n$3\r\nSET\r\n$1073741824\r\n", "-ERR Protocol error: invalid bulk length"),
                                  ("*x\r\n", "-ERR Protocol error: invalid multibulk length")] {
            let socket = try RawConnection(port: port)
            try socket.send(auth + input)
            let answer = try socket.readUntilClosed(timeout: .seconds(10))
            #expect(answer.hasPrefix("+OK\r\n" + expected), "\(input.debugDescription): \(answer.debugDescription)")
        }

        // A half-sent command, then the client goes away: nothing to answer.
        let half = try RawConnection(port: port)
        try half.send(auth + "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nonly-part")
        half.close()

        // A client that pipelines reads of a 512 KB value and never reads a
        // reply: the node stops reading it once replies back up, its memory
        // stays bounded, and everyone else is served meanwhile.
        let big = String(repeating: "x", count: 512 << 10)
        #expect(try await Self.cli(cluster, 0, ["-x", "set", "big"], stdin: big).stdout.contains("OK"))
        let before = try Self.residentMegabytes(cluster.node(0).pid)
        let greedy = try RawConnection(port: port)
        try greedy.send(auth)
        let get = "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n"
        // 4,000 GETs: 2 GB of replies if the node kept them all.
        let sent = try greedy.sendAsMuchAsTaken(String(repeating: get, count: 4000), within: .seconds(10))
        #expect(sent > 0)
        #expect(try await Self.reply(cluster, 0, "ping") == "PONG", "another client is served while one does not read")
        #expect(try await Self.reply(cluster, 0, "get", "k") == "", "and reads keep working")
        let after = try Self.residentMegabytes(cluster.node(0).pid)
        print("resp: node 0 resident \(before) MB before a client pipelined \(sent / get.utf8.count) reads of 512 KB without reading, \(after) MB after")
        #expect(after - before < 100, "node 0 grew from \(before) MB to \(after) MB for a client that does not read")
        greedy.close()
        #expect(cluster.node(0).isRunning)
        #expect(try await Self.reply(cluster, 0, "ping") == "PONG")
        try await cluster.stop()
    }

    @Test func aSighupReloadOfThePasswordsClosesTheSessionsOfARemovedPassword() async throws {
        let cluster = try LocalCluster(nodes: 1)
        cluster.placementArguments = ["--replicas", "1"]
        try cluster.serveRESP()
        try await cluster.startAndSettle()
        let old = try #require(cluster.respPassword)
        let session = try RawConnection(port: cluster.respPorts[0])
        try session.send("AUTH \(old)\r\nPING\r\n")
        #expect(try session.read(count: 12) == "+OK\r\n+PONG\r\n")

        let file = cluster.dataDirectory.appendingPathComponent("resp-passwords")
        try "client a-new-password-here app\n".write(to: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        kill(cluster.node(0).pid, SIGHUP)
        // The session authenticated with the removed password is closed.
        #expect(try session.readUntilClosed(timeout: .seconds(10)) == "")
        session.close()
        let refused = try await Self.cli(cluster, 0, ["ping"], password: old)
        #expect((refused.stdout + refused.stderr).contains("WRONGPASS"), "\(refused.stdout)\(refused.stderr)")
        #expect(try await Self.cli(cluster, 0, ["ping"], password: "a-new-password-here").stdout == "PONG\n")
        #expect(cluster.node(0).isRunning)
        try await cluster.stop()
    }

    static func residentMegabytes(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return (Int(line.split(whereSeparator: \.isWhitespace)[1]) ?? 0) / 1024
    }
}
