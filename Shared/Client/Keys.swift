import Foundation
import RPC
import ZeroMQ

/// CURVE keys for clients and operators: what `ringctl keygen` makes.
public enum Keys {
    /// What ``generate(name:directory:)`` wrote.
    public struct Generated: Sendable {
        public let publicKey: String
        public let publicFile: URL
        public let secretFile: URL
    }

    /// Writes a new keypair `NAME.pub` / `NAME.secret` (mode 0600) into
    /// `directory`; refuses a bad name or an existing key.
    public static func generate(name: String, directory: URL) throws(RingstoreError) -> Generated {
        let pair: CurveKeyPair
        do {
            pair = try CurveKeyPair.generate()
        } catch {
            throw .unavailable("cannot generate a CURVE keypair (libzmq built without libsodium?): \(error)")
        }
        do {
            try KeyFiles.write(pair, name: name, directory: directory)
        } catch {
            throw .invalidArgument(error.description)
        }
        let (publicFile, secretFile) = KeyFiles.paths(name: name, directory: directory)
        return Generated(publicKey: pair.publicKey.z85, publicFile: publicFile, secretFile: secretFile)
    }
}
