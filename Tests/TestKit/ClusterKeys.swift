import Foundation
import RPC
import RingstoreClient
import ZeroMQ

/// CURVE keys for a test cluster, written as `ringctl keygen` would: the
/// services' server pair, an admin, a client and a stranger (not listed),
/// and one node key per node, with the allowlist naming their roles.
public struct ClusterKeys: Sendable {
    public let directory: URL
    public let server: CurveKeyPair
    public let admin: CurveKeyPair
    public let client: CurveKeyPair
    /// A second client key: another session of the same application.
    public let otherClient: CurveKeyPair
    public let stranger: CurveKeyPair
    public let nodes: [CurveKeyPair]

    public init(directory: URL, nodes count: Int) throws {
        self.directory = directory
        server = try CurveKeyPair.generate()
        admin = try CurveKeyPair.generate()
        client = try CurveKeyPair.generate()
        otherClient = try CurveKeyPair.generate()
        stranger = try CurveKeyPair.generate()
        nodes = try (0..<count).map { _ in try CurveKeyPair.generate() }
        try KeyFiles.write(server, name: "cluster", directory: directory)
        try KeyFiles.write(admin, name: "admin", directory: directory)
        try KeyFiles.write(client, name: "client", directory: directory)
        try KeyFiles.write(otherClient, name: "other-client", directory: directory)
        try KeyFiles.write(stranger, name: "stranger", directory: directory)
        for (index, keys) in nodes.enumerated() { try KeyFiles.write(keys, name: "node-\(index)", directory: directory) }
        let lines = ["admin \(admin.publicKey) admin", "client \(client.publicKey) app", "client \(otherClient.publicKey) app-2"]
            + nodes.enumerated().map { "node \($1.publicKey) node-\($0)" }
        try (lines.joined(separator: "\n") + "\n").write(to: allowlist, atomically: true, encoding: .utf8)
    }

    public var allowlist: URL { directory.appendingPathComponent("allowlist") }
    public func secret(_ name: String) -> String { directory.appendingPathComponent(name + ".secret").path }
    public var serverPublic: String { directory.appendingPathComponent("cluster.pub").path }

    /// The options of every service.
    public var serverArguments: [String] { ["--server-key", secret("cluster"), "--allowlist", allowlist.path] }

    /// ringctl's options to act as `name` (admin, client, other-client, stranger).
    public func ringctl(as name: String) -> [String] { ["--key", secret(name), "--server-key", serverPublic] }

    /// The test process's own connections: as admin.
    public var adminSecurity: ClientSecurity { ClientSecurity(keys: admin, serverKey: server.publicKey) }

    /// The client library's credentials to act as `name`, read from the key
    /// files as an application would.
    public func credentials(as name: String) throws -> Credentials {
        try Credentials(keyFile: URL(fileURLWithPath: secret(name)), serverKeyFile: URL(fileURLWithPath: serverPublic))
    }
}
