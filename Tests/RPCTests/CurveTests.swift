import Foundation
import RPC
import Synchronization
import Testing
import TestKit
import ZeroMQ

/// CurveZMQ keys, the allowlist, and the ZAP handler deciding real handshakes.
@Suite struct CurveKeyTests {
    @Test func generatedPairsRoundTripThroughTheirText() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey.z85.utf8.count == 40 && pair.publicKey.bytes.count == 32)
        #expect(CurveKey(pair.publicKey.z85) == pair.publicKey)
        #expect(CurveKey(bytes: pair.publicKey.bytes) == pair.publicKey)
        #expect(CurveKey("  \(pair.publicKey.z85)\n") == pair.publicKey)
        #expect(try CurveKeyPair.generate() != pair)
    }

    @Test(arguments: ["", "short", String(repeating: "a", count: 39), String(repeating: "a", count: 41),
                      String(repeating: "~", count: 40)])
    func malformedKeysAreRefused(text: String) {
        #expect(CurveKey(text) == nil)
    }

    @Test func aPairWhosePublicKeyIsNotItsSecretKeysIsRefused() throws {
        let one = try CurveKeyPair.generate()
        let other = try CurveKeyPair.generate()
        #expect(CurveKeyPair(publicKey: other.publicKey, secretKey: one.secretKey) == nil)
        #expect(CurveKeyPair(publicKey: one.publicKey, secretKey: one.secretKey) == one)
    }
}

@Suite struct AllowlistTests {
    @Test func linesGiveRolesAndNamesAndCommentsAreSkipped() throws {
        // Z85 keys may hold `#`, the comment mark: take one that does.
        var admin = try CurveKeyPair.generate().publicKey
        while !admin.z85.contains("#") { admin = try CurveKeyPair.generate().publicKey }
        let node = try CurveKeyPair.generate().publicKey
        let list = try Allowlist(parsing: """
            # operators
            admin \(admin) ops   # laptop

            node\t\(node)
            """)
        #expect(list.entry(for: admin)?.role == .admin && list.entry(for: admin)?.name == "ops")
        #expect(list.entry(for: node)?.role == .node && list.entry(for: node)?.name == String(node.z85.prefix(8)))
        #expect(list.entry(for: try CurveKeyPair.generate().publicKey) == nil)
    }

    @Test func rolesNest() {
        #expect(Allowlist.Role.admin.allows(.node) && Allowlist.Role.admin.allows(.client))
        #expect(Allowlist.Role.node.allows(.client) && !Allowlist.Role.node.allows(.admin))
        #expect(!Allowlist.Role.client.allows(.node) && Allowlist.Role.client.allows(.client))
    }

    @Test func badLinesAreRefusedWithTheirNumber() throws {
        let key = try CurveKeyPair.generate().publicKey
        let cases: [(String, Int, String)] = [
            ("owner \(key)", 1, "unknown role"),
            ("# c\nadmin not-a-key", 2, "not a CURVE public key"),
            ("admin", 1, "expected ROLE PUBLIC-KEY"),
            ("admin \(key) a b", 1, "expected ROLE PUBLIC-KEY"),
            ("admin \(key)\nnode \(key)", 2, "listed twice"),
        ]
        for (text, line, fragment) in cases {
            #expect {
                try Allowlist(parsing: text)
            } throws: { error in
                guard let error = error as? AllowlistError else { return false }
                return error.line == line && error.message.contains(fragment)
            }
        }
    }
}

/// What a CURVE server saw: messages with the peer's User-Id, and ZAP lookups.
final class CurveServerLog: Sendable {
    private let state = Mutex<(messages: [(payload: String, user: String?)], lookups: Int)>(([], 0))
    func received(_ payload: String, _ user: String?) { state.withLock { $0.messages.append((payload, user)) } }
    func lookedUp() { state.withLock { $0.lookups += 1 } }
    var messages: [(payload: String, user: String?)] { state.withLock { $0.messages } }
    var lookups: Int { state.withLock { $0.lookups } }
}

/// A ROUTER with CURVE on, and the ZAP handler of its context.
final class CurveServer {
    let socket: ZMQSocket
    let zap: ZAPHandler

    init(reactor: Reactor, keys: CurveKeyPair, allowlist: Allowlist, log: CurveServerLog) throws {
        zap = try ZAPHandler(reactor: reactor) {
            log.lookedUp()
            return allowlist
        }
        socket = try ZMQSocket(context: reactor.context, type: .router)
        try socket.setLinger(milliseconds: 0)
        try socket.setCurveServer(keys)
        try socket.setZAPDomain("test")
        _ = try socket.bind("tcp://127.0.0.1:*")
        reactor.addReader(socket) { [unowned self] in
            while let message = try? socket.receiveWithPeer(dontWait: true) {
                log.received(String(decoding: message.frames.last ?? [], as: UTF8.self), message.userID)
            }
        }
    }
}

@Suite(.serialized) struct ZAPHandshakeTests {
    private static func start(allowing allowed: [Allowlist.Entry], log: CurveServerLog) async throws -> (ReactorHarness, CurveKeyPair) {
        let keys = try CurveKeyPair.generate()
        let harness = try await ReactorHarness { reactor in
            let server = try CurveServer(reactor: reactor, keys: keys, allowlist: Allowlist(allowed), log: log)
            return (server, try server.socket.lastEndpoint)
        }
        return (harness, keys)
    }

    private static func client(_ context: ZMQContext, _ endpoint: String, keys: CurveKeyPair?, server: CurveKey) throws -> ZMQSocket {
        let socket = try ZMQSocket(context: context, type: .dealer)
        try socket.setLinger(milliseconds: 0)
        if let keys { try socket.setCurveClient(keys, server: server) }
        try socket.connect(endpoint)
        return socket
    }

    @Test func aListedKeyConnectsAndTheServerSeesItAsTheUserID() async throws {
        let log = CurveServerLog()
        let clientKeys = try CurveKeyPair.generate()
        let (harness, serverKeys) = try await Self.start(allowing: [.init(key: clientKeys.publicKey, role: .client, name: "app")], log: log)
        let context = try ZMQContext()
        let socket = try Self.client(context, harness.endpoint, keys: clientKeys, server: serverKeys.publicKey)
        _ = try socket.send([Array("hello".utf8)])
        try await waitUntil("the server to receive the message") { !log.messages.isEmpty }
        #expect(log.messages.first?.payload == "hello")
        #expect(log.messages.first?.user == clientKeys.publicKey.z85)
        socket.close()
        context.shutdown()
        try await harness.stop()
    }

    @Test func anUnknownKeyIsRefusedAtTheHandshake() async throws {
        let log = CurveServerLog()
        let listed = try CurveKeyPair.generate()
        let (harness, serverKeys) = try await Self.start(allowing: [.init(key: listed.publicKey, role: .admin, name: "ops")], log: log)
        let context = try ZMQContext()
        let stranger = try Self.client(context, harness.endpoint, keys: try CurveKeyPair.generate(), server: serverKeys.publicKey)
        _ = try stranger.send([Array("let me in".utf8)], dontWait: true)
        try await waitUntil("the ZAP handler to be asked") { log.lookups >= 1 }
        // The refused peer's message never arrives, while a listed peer's, sent after it, does.
        let friend = try Self.client(context, harness.endpoint, keys: listed, server: serverKeys.publicKey)
        _ = try friend.send([Array("friend".utf8)])
        try await waitUntil("the listed peer's message") { log.messages.contains { $0.payload == "friend" } }
        #expect(log.messages.map(\.payload) == ["friend"])
        stranger.close()
        friend.close()
        context.shutdown()
        try await harness.stop()
    }

    @Test func aPlaintextClientGetsNothingThrough() async throws {
        let log = CurveServerLog()
        let listed = try CurveKeyPair.generate()
        let (harness, serverKeys) = try await Self.start(allowing: [.init(key: listed.publicKey, role: .admin, name: "ops")], log: log)
        let context = try ZMQContext()
        let plaintext = try Self.client(context, harness.endpoint, keys: nil, server: serverKeys.publicKey)
        _ = try plaintext.send([Array("plain".utf8)], dontWait: true)
        let friend = try Self.client(context, harness.endpoint, keys: listed, server: serverKeys.publicKey)
        _ = try friend.send([Array("friend".utf8)])
        try await waitUntil("the listed peer's message") { log.messages.contains { $0.payload == "friend" } }
        // The plaintext peer connected first; its message would have come first had it been let in.
        #expect(log.messages.map(\.payload) == ["friend"])
        plaintext.close()
        friend.close()
        context.shutdown()
        try await harness.stop()
    }

    @Test func theAllowlistIsReadAtEachHandshake() async throws {
        let keys = try CurveKeyPair.generate()
        let client = try CurveKeyPair.generate()
        let current = Mutex(Allowlist())
        let log = CurveServerLog()
        let harness = try await ReactorHarness { reactor in
            let zap = try ZAPHandler(reactor: reactor) {
                log.lookedUp()
                return current.withLock { $0 }
            }
            let socket = try ZMQSocket(context: reactor.context, type: .router)
            try socket.setLinger(milliseconds: 0)
            try socket.setCurveServer(keys)
            _ = try socket.bind("tcp://127.0.0.1:*")
            reactor.addReader(socket) {
                while let message = try? socket.receiveWithPeer(dontWait: true) {
                    log.received(String(decoding: message.frames.last ?? [], as: UTF8.self), message.userID)
                }
            }
            return ([zap, socket] as AnyObject, try socket.lastEndpoint)
        }
        let context = try ZMQContext()
        let early = try Self.client(context, harness.endpoint, keys: client, server: keys.publicKey)
        _ = try early.send([Array("early".utf8)], dontWait: true)
        try await waitUntil("the unlisted key's handshake to be refused") { log.lookups >= 1 }
        #expect(log.messages.isEmpty, "an unlisted key got a message through")
        // Listed now: the next handshake of that key is let in.
        current.withLock { $0 = Allowlist([.init(key: client.publicKey, role: .client, name: "late")]) }
        let listed = try Self.client(context, harness.endpoint, keys: client, server: keys.publicKey)
        _ = try listed.send([Array("listed".utf8)])
        try await waitUntil("the message once the key is listed") { log.messages.contains { $0.payload == "listed" } }
        #expect(log.messages.first { $0.payload == "listed" }?.user == client.publicKey.z85)
        // Removed again: a new connection of that key is refused, while another listed key's goes through.
        let other = try CurveKeyPair.generate()
        current.withLock { $0 = Allowlist([.init(key: other.publicKey, role: .client, name: "other")]) }
        let removed = try Self.client(context, harness.endpoint, keys: client, server: keys.publicKey)
        _ = try removed.send([Array("removed".utf8)], dontWait: true)
        let lookups = log.lookups
        try await waitUntil("the removed key's handshake to be refused") { log.lookups > lookups }
        let friend = try Self.client(context, harness.endpoint, keys: other, server: keys.publicKey)
        _ = try friend.send([Array("friend".utf8)])
        try await waitUntil("the other key's message") { log.messages.contains { $0.payload == "friend" } }
        #expect(!log.messages.contains { $0.payload == "removed" })
        for socket in [early, listed, removed, friend] { socket.close() }
        context.shutdown()
        try await harness.stop()
    }
}

@Suite struct KeyFilesTests {
    private func scratch() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-keys-\(UUID().uuidString)")
    }

    @Test func aWrittenPairReadsBackAndItsSecretIsPrivate() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        var pair = try CurveKeyPair.generate()
        while !pair.publicKey.z85.contains("#") { pair = try CurveKeyPair.generate() }
        try KeyFiles.write(pair, name: "node-1", directory: directory)
        let (publicPath, secretPath) = KeyFiles.paths(name: "node-1", directory: directory)
        #expect(try KeyFiles.readPair(secretPath) == pair)
        #expect(try KeyFiles.readPublicKey(publicPath) == pair.publicKey)
        let mode = try FileManager.default.attributesOfItem(atPath: secretPath.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(!(try String(contentsOf: publicPath, encoding: .utf8)).contains(pair.secretKey.z85))
    }

    @Test func anExistingKeyIsNeverOverwrittenAndBadNamesAreRefused() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try CurveKeyPair.generate()
        try KeyFiles.write(first, name: "ops", directory: directory)
        #expect(throws: KeyFileError.self) { try KeyFiles.write(try CurveKeyPair.generate(), name: "ops", directory: directory) }
        #expect(try KeyFiles.readPair(KeyFiles.paths(name: "ops", directory: directory).secret) == first)
        for name in ["", "../x", ".hidden", "a b", String(repeating: "k", count: 65)] {
            #expect(throws: KeyFileError.self, "\(name)") { try KeyFiles.write(first, name: name, directory: directory) }
        }
    }

    @Test func aSecretFileWhosePublicKeyDoesNotMatchIsRefused() throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let (one, other) = (try CurveKeyPair.generate(), try CurveKeyPair.generate())
        let path = directory.appendingPathComponent("bad.secret")
        try "public-key \(other.publicKey)\nsecret-key \(one.secretKey.z85)\n".write(to: path, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path.path)
        #expect { try KeyFiles.readPair(path) } throws: { "\($0)".contains("is not the secret key's") }
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o620])
    func aSecretOthersCanReadOrWriteIsRefused(mode: Int) throws {
        let directory = scratch()
        defer { try? FileManager.default.removeItem(at: directory) }
        try KeyFiles.write(try CurveKeyPair.generate(), name: "ops", directory: directory)
        let secret = KeyFiles.paths(name: "ops", directory: directory).secret
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: secret.path)
        #expect { try KeyFiles.readPair(secret) } throws: { "\($0)".contains("chmod 600") && "\($0)".contains(String(mode, radix: 8)) }
        try FileManager.default.setAttributes([.posixPermissions: 0o400], ofItemAtPath: secret.path)
        #expect(throws: Never.self) { try KeyFiles.readPair(secret) }
    }
}
