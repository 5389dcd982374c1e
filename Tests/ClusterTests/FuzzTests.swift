import Foundation
import RPC
import RingProtocol
import SwiftProtobuf
import Testing
import TestKit
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// Random and mutated frames, seeded so a failure replays exactly.
///
/// Each message is one of: random frames (1...6 frames of random bytes); a
/// valid envelope around a real request body, with random mutations of the
/// header and body bytes; a valid envelope with the wrong number or order of
/// frames; an odd but decodable header (unknown or other service's method,
/// future protocol version, request id 0, expired or huge deadline, huge
/// caller); or a frame bigger than the server accepts.
struct FrameFuzzer {
    /// Methods and a valid body for each, the seeds of the mutations.
    let corpus: [(path: String, body: [UInt8])]
    /// Methods sent only with undecodable bodies: a well-formed one would be a
    /// legitimate request (joining a phantom member), not bad input.
    let undecodableOnly: [String]
    var generator: SeededGenerator
    private var nextID: UInt64 = 1

    init(corpus: [(String, [UInt8])], undecodableOnly: [String] = [], seed: UInt64) {
        self.corpus = corpus.map { (path: $0.0, body: $0.1) }
        self.undecodableOnly = undecodableOnly
        generator = SeededGenerator(seed: seed)
    }

    private mutating func below(_ bound: Int) -> Int { Int(generator.next() % UInt64(max(1, bound))) }
    private mutating func chance(_ oneIn: Int) -> Bool { below(oneIn) == 0 }

    private mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    }

    mutating func header(method: String, version: UInt32 = wireProtocolVersion) -> [UInt8] {
        nextID += 1
        let id = nextID
        let header = WireRequestHeader.with {
            $0.version = version
            $0.method = method
            $0.requestID = id
            $0.timeoutMicros = 2_000_000
            $0.caller = "fuzz"
        }
        return (try? header.serializedBytes()) ?? []
    }

    /// Flips, overwrites, inserts, deletes, truncates or duplicates bytes.
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var data = input
        for _ in 0..<(1 + below(3)) {
            switch below(6) {
            case 0 where !data.isEmpty:
                let at = below(data.count)
                data[at] ^= UInt8(1) << UInt8(below(8))
            case 1 where !data.isEmpty:
                data[below(data.count)] = UInt8(truncatingIfNeeded: generator.next())
            case 2:
                data.insert(contentsOf: bytes(1 + below(8)), at: below(data.count + 1))
            case 3 where !data.isEmpty:
                let from = below(data.count)
                data.removeSubrange(from..<min(data.count, from + 1 + below(4)))
            case 4:
                data = Array(data.prefix(below(data.count + 1)))
            default:
                if !data.isEmpty {
                    let from = below(data.count)
                    let chunk = data[from..<min(data.count, from + 1 + below(16))]
                    data.insert(contentsOf: chunk, at: below(data.count + 1))
                }
            }
        }
        return data
    }

    /// A body that no protobuf decoder accepts: field 1 with the invalid wire type 7.
    mutating func undecodableBody() -> [UInt8] { [0x0F] + bytes(below(16)) }

    /// The next message, and what kind it is (for the report).
    mutating func next(hugeBytes: Int) -> (kind: String, frames: [ZMQFrame]) {
        let seed = corpus[below(corpus.count)]
        switch below(20) {
        case 0...3:
            let frames = (0..<(1 + below(6))).map { _ in bytes(chance(10) ? below(4096) : below(64)) }
            return ("random frames", frames)
        case 4...10:
            let header = chance(3) ? mutate(header(method: seed.path)) : header(method: seed.path)
            let body = undecodableOnly.contains(seed.path) ? undecodableBody() : mutate(seed.body)
            return ("mutated envelope", [[], header, body])
        case 11...13:
            var frames: [ZMQFrame] = [[], header(method: seed.path), seed.body]
            switch below(5) {
            case 0: frames.append(bytes(below(32)))
            case 1: frames.removeLast()
            case 2: frames.removeFirst()
            case 3: frames[0] = bytes(1 + below(8))
            default: frames.swapAt(1, 2)
            }
            if undecodableOnly.contains(seed.path), frames.count >= 3 { frames[2] = undecodableBody() }
            return ("wrong frames", frames)
        case 14...18:
            let body = undecodableOnly.contains(seed.path) ? undecodableBody() : seed.body
            nextID += 1
            let id = nextID
            let header: WireRequestHeader
            switch below(7) {
            case 0: header = .with { $0.version = 1; $0.method = "/ringstore.v1.Nope/\(below(1000))"; $0.requestID = id }
            case 1: header = .with { $0.version = 1; $0.method = String(decoding: bytes(below(40)), as: UTF8.self); $0.requestID = id }
            case 2: header = .with { $0.version = 99; $0.method = seed.path; $0.requestID = id }
            case 3: header = .with { $0.version = 1; $0.method = seed.path; $0.requestID = 0 }
            case 4: header = .with { $0.version = 1; $0.method = seed.path; $0.requestID = id; $0.timeoutMicros = 1 }
            case 5: header = .with { $0.version = 1; $0.method = seed.path; $0.requestID = id; $0.timeoutMicros = .max }
            default: header = .with { $0.version = 1; $0.method = seed.path; $0.requestID = id; $0.caller = String(repeating: "c", count: 10_000) }
            }
            return ("odd header", [[], (try? header.serializedBytes()) ?? [], body])
        default:
            // A few huge frames only: each costs the server a dropped connection.
            if chance(4) {
                return ("huge frame", [[], header(method: seed.path), [UInt8](repeating: 0x41, count: hugeBytes)])
            }
            return ("unknown method", [[], header(method: seed.path + "X"), seed.body])
        }
    }
}

/// Every request socket of every service (placement, lock service, each
/// storage node) gets a bounded number of random and mutated frames from a raw
/// DEALER, and every TCP port (the PUB sockets too) random bytes instead of a
/// ZMTP handshake; afterwards every process is still running, membership is
/// unchanged, and valid requests work.
@Suite(.serialized) struct FuzzTests {
    static let messagesPerSocket = 300

    static func body(_ message: some SwiftProtobuf.Message) -> [UInt8] { (try? message.serializedBytes()) ?? [] }

    /// Sends the fuzzer's messages from a fresh DEALER, then collects replies
    /// until none came for a while; returns a summary.
    static func fuzz(_ endpoint: String, corpus: [(String, [UInt8])], undecodableOnly: [String] = [], seed: UInt64,
                     hugeBytes: Int, security: ClientSecurity? = nil) async throws -> String {
        try await Task.detached {
            var fuzzer = FrameFuzzer(corpus: corpus, undecodableOnly: undecodableOnly, seed: seed)
            let context = try ZMQContext()
            let dealer = try ZMQSocket(context: context, type: .dealer)
            defer { dealer.close() }
            try dealer.setLinger(milliseconds: 0)
            try dealer.setSendHighWaterMark(10_000)
            try dealer.setReceiveTimeout(milliseconds: 300)
            if let security { try dealer.setCurveClient(security.keys, server: security.serverKey) }
            try dealer.connect(endpoint)
            var kinds: [String: Int] = [:]
            var statuses: [String: Int] = [:]
            func drain() throws {
                while let frames = try dealer.receive(dontWait: true) {
                    let name = Envelope.parseReply(frames).map { $0.header.code.name } ?? "unparsable"
                    statuses[name, default: 0] += 1
                }
            }
            // Huge frames go over a connection of their own: the server drops the
            // connection that carried one, with whatever followed it.
            let hugeDealer = try ZMQSocket(context: context, type: .dealer)
            defer { hugeDealer.close() }
            try hugeDealer.setLinger(milliseconds: 500)
            if let security { try hugeDealer.setCurveClient(security.keys, server: security.serverKey) }
            try hugeDealer.connect(endpoint)
            for _ in 0..<messagesPerSocket {
                let (kind, frames) = fuzzer.next(hugeBytes: hugeBytes)
                kinds[kind, default: 0] += 1
                _ = try (kind == "huge frame" ? hugeDealer : dealer).send(frames)
                try drain()
            }
            // Replies still on their way (parked requests may never answer).
            while let frames = try dealer.receive() {
                let name = Envelope.parseReply(frames).map { $0.header.code.name } ?? "unparsable"
                statuses[name, default: 0] += 1
            }
            let sent = kinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            let answered = statuses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            return "sent \(messagesPerSocket) (\(sent)); replies: \(answered)"
        }.value
    }

    /// Opens `connections` TCP connections to `endpoint` and writes random bytes
    /// (sometimes after a valid ZMTP 3.0 greeting) on each.
    static func tcpGarbage(_ endpoint: String, connections: Int, seed: UInt64) async {
        await Task.detached {
            var generator = SeededGenerator(seed: seed)
            let parts = endpoint.replacingOccurrences(of: "tcp://", with: "").split(separator: ":")
            guard parts.count == 2, let port = UInt16(parts[1]) else { return }
            for index in 0..<connections {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                guard fd >= 0 else { continue }
                defer { close(fd) }
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = port.bigEndian
                address.sin_addr.s_addr = inet_addr(String(parts[0]))
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else { continue }
                var payload: [UInt8] = []
                if index % 2 == 0 {
                    // ZMTP 3.0 greeting: signature, version 3.0, mechanism NULL, as-server 0, filler.
                    payload = [0xFF] + [UInt8](repeating: 0, count: 8) + [0x7F, 3, 0] + Array("NULL".utf8)
                        + [UInt8](repeating: 0, count: 16) + [0] + [UInt8](repeating: 0, count: 31)
                }
                let length = Int(generator.next() % 2048)
                payload += (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                _ = payload.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                usleep(2000)
            }
        }.value
    }

    /// Secured, the fuzzer connects with the admin key, so that its frames
    /// reach every handler through CURVE (role refusals are tested apart).
    @Test(.timeLimit(.minutes(2)), arguments: [false, true])
    func everyServiceSurvivesRandomAndMutatedFrames(secured: Bool) async throws {
        let cluster = try LocalCluster(nodes: 3, secured: secured)
        try await cluster.startAndSettle()
        let membersBefore = try await cluster.members()
        let nodeAddress = cluster.nodeAddress(0)
        let placementCorpus: [(String, [UInt8])] = [
            (PlacementMethods.health.path, Self.body(WireHealthRequest())),
            (PlacementMethods.echo.path, Self.body(WireEchoRequest.with { $0.payload = Data("fuzz".utf8) })),
            (PlacementMethods.heartbeat.path, Self.body(WireHeartbeatRequest.with { $0.address = nodeAddress; $0.ringEpoch = 1; $0.caughtUp = true })),
            (PlacementMethods.getMembers.path, Self.body(WireGetMembersRequest())),
            (PlacementMethods.getRing.path, Self.body(WireGetRingRequest())),
            (PlacementMethods.snapshot.path, Self.body(WireSnapshotRequest())),
            (PlacementMethods.reportMigration.path, Self.body(WireReportMigrationRequest.with { $0.type = "migration_progress"; $0.epoch = 1 })),
            (PlacementMethods.reportRepair.path, Self.body(WireReportRepairRequest.with { $0.details.node = nodeAddress; $0.details.reason = "requested" })),
            (PlacementMethods.join.path, Self.body(WireJoinRequest.with { $0.address = "fuzz.invalid:1" })),
            (PlacementMethods.leave.path, Self.body(WireLeaveRequest.with { $0.address = nodeAddress })),
            (PlacementMethods.remove.path, Self.body(WireRemoveRequest.with { $0.address = nodeAddress })),
            (PlacementMethods.handoffComplete.path, Self.body(WireHandoffCompleteRequest.with { $0.address = nodeAddress })),
        ]
        let membership = [PlacementMethods.join.path, PlacementMethods.leave.path, PlacementMethods.remove.path,
                          PlacementMethods.handoffComplete.path]
        let lockCorpus: [(String, [UInt8])] = [
            (LockMethods.health.path, Self.body(WireHealthRequest())),
            (LockMethods.echo.path, Self.body(WireEchoRequest.with { $0.payload = Data("fuzz".utf8) })),
            (LockMethods.acquire.path, Self.body(WireLockAcquireRequest.with { $0.name = "fuzz"; $0.owner = "fuzzer"; $0.ttlMillis = 1000 })),
            (LockMethods.renew.path, Self.body(WireLockRenewRequest.with { $0.name = "fuzz"; $0.owner = "fuzzer"; $0.token = 1 })),
            (LockMethods.release.path, Self.body(WireLockReleaseRequest.with { $0.name = "fuzz"; $0.owner = "fuzzer"; $0.token = 1 })),
            (LockMethods.status.path, Self.body(WireLockStatusRequest.with { $0.name = "fuzz" })),
            (LockMethods.list.path, Self.body(WireLockListRequest())),
            (LockMethods.snapshot.path, Self.body(WireLockSnapshotRequest())),
        ]
        let record = WireRecord.with {
            $0.key = Data("fuzz-key".utf8)
            $0.value = Data("fuzz-value".utf8)
            $0.version.timestamp = 1 << 40
            $0.version.writer = 7
        }
        let storageCorpus: [(String, [UInt8])] = [
            (StorageMethods.health.path, Self.body(WireHealthRequest())),
            (StorageMethods.echo.path, Self.body(WireEchoRequest.with { $0.payload = Data("fuzz".utf8) })),
            (StorageMethods.put.path, Self.body(WirePutRequest.with { $0.key = Data("fuzz-key".utf8); $0.value = Data("v".utf8); $0.quorum.w = 2 })),
            (StorageMethods.get.path, Self.body(WireGetRequest.with { $0.key = Data("fuzz-key".utf8); $0.quorum.r = 2 })),
            (StorageMethods.delete.path, Self.body(WireDeleteRequest.with { $0.key = Data("fuzz-gone".utf8) })),
            (StorageMethods.replicaWrite.path, Self.body(WireReplicaWriteRequest.with { $0.records = [record] })),
            (StorageMethods.replicaRead.path, Self.body(WireReplicaReadRequest.with { $0.key = Data("fuzz-key".utf8) })),
            (StorageMethods.stats.path, Self.body(WireStatsRequest())),
            (StorageMethods.migrateBatch.path, Self.body(WireMigrateBatchRequest.with {
                $0.planVersion = 1; $0.transferID = 1; $0.from = nodeAddress; $0.batch = 1; $0.records = [record]
            })),
            (StorageMethods.arcDigest.path, Self.body(WireArcDigestRequest.with { $0.arcFirst = 0; $0.arcLast = 1 << 20; $0.leaves = 16 })),
            (StorageMethods.readRanges.path, Self.body(WireReadRangesRequest.with {
                $0.ranges = [WireArcRange.with { $0.first = 0; $0.last = 1 << 20 }]; $0.limit = 10
            })),
            (StorageMethods.repair.path, Self.body(WireRepairRequest())),
        ]
        var targets: [(name: String, endpoint: String, corpus: [(String, [UInt8])], undecodableOnly: [String], huge: Int)] = [
            ("placement", cluster.placementEndpoint, placementCorpus, membership, 9 << 20),
            ("lock", cluster.lockEndpoint, lockCorpus, [], 9 << 20),
        ]
        for index in 0..<3 { targets.append(("node \(index)", cluster.nodeEndpoints[index], storageCorpus, [], 2 << 20)) }
        for (number, target) in targets.enumerated() {
            let summary = try await Self.fuzz(target.endpoint, corpus: target.corpus, undecodableOnly: target.undecodableOnly,
                                              seed: 101 + UInt64(number), hugeBytes: target.huge, security: cluster.security)
            print("fuzz \(target.name)\(secured ? " (CURVE)" : ""): \(summary)")
        }
        let everyPort = [cluster.placementEndpoint, cluster.placementEvents, cluster.lockEndpoint, cluster.lockEvents] + cluster.nodeEndpoints
        for (index, endpoint) in everyPort.enumerated() {
            await Self.tcpGarbage(endpoint, connections: 10, seed: 900 + UInt64(index))
        }
        print("fuzz: 10 connections of random bytes to each of \(everyPort.count) TCP ports (request and event sockets)")

        // Every process is still running and serves valid requests.
        for process in [cluster.placement!, cluster.lock!] + (0..<3).map(cluster.node) {
            #expect(process.isRunning, "\(process.name) exited: \(process.log.suffix(2000))")
        }
        try await cluster.waitHealthy(cluster.placementEndpoint, PlacementMethods.health)
        try await cluster.waitHealthy(cluster.lockEndpoint, LockMethods.health)
        for index in 0..<3 {
            try await cluster.waitHealthy(cluster.nodeEndpoints[index], StorageMethods.health)
            let client = try cluster.nodeClient(index)
            defer { client.close() }
            let key = Data("after-fuzz-\(index)".utf8)
            _ = try await client.call(StorageMethods.put, WirePutRequest.with { $0.key = key; $0.value = key; $0.quorum.w = 3 })
            let reply = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = key; $0.quorum.r = 3 })
            #expect(reply.found && reply.value == key)
        }
        let locks = try cluster.rpc(cluster.lockEndpoint, caller: "after-fuzz")
        defer { locks.close() }
        let grant = try await locks.call(LockMethods.acquire, WireLockAcquireRequest.with {
            $0.name = "after-fuzz"
            $0.owner = "test"
            $0.ttlMillis = 5000
        }).grant
        #expect(grant.token > 0)
        let membersAfter = try await cluster.members()
        #expect(Set(membersAfter.members.keys) == Set(membersBefore.members.keys))
        for (address, member) in membersAfter.members { #expect(member.state == .up, "\(address) is \(member.state)") }
        try await cluster.stop()
    }
}
