import Foundation
import Glibc
import ZeroMQ

/// CURVE key files: `NAME.pub` holds the public key (one Z85 line, to copy
/// into allowlists and to give clients the server's key), `NAME.secret` the
/// pair (readable by its owner only, mode 0600).
///
///     # ringstore CURVE secret key "node-1"; keep it private
///     public-key rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
///     secret-key JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6
public enum KeyFiles {
    /// The two files of key `name` in `directory`.
    public static func paths(name: String, directory: URL) -> (public: URL, secret: URL) {
        (directory.appendingPathComponent(name + ".pub"), directory.appendingPathComponent(name + ".secret"))
    }

    /// Whether `name` can name key files: 1 to 64 letters, digits, `.`, `_` or `-`, not starting with `.`.
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && !name.hasPrefix(".")
            && name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    /// Writes a new pair for `name` into `directory` (created if absent, mode
    /// 0700); refuses to overwrite an existing key. The secret file is created
    /// with mode 0600 before anything is written to it.
    public static func write(_ keys: CurveKeyPair, name: String, directory: URL) throws(KeyFileError) {
        guard isValidName(name) else { throw KeyFileError("'\(name)' cannot name a key: use 1 to 64 letters, digits, '.', '_' or '-'") }
        let (publicPath, secretPath) = paths(name: name, directory: directory)
        for path in [publicPath, secretPath] where FileManager.default.fileExists(atPath: path.path) {
            throw KeyFileError("\(path.path) exists; remove it first to replace the key")
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw KeyFileError("cannot create \(directory.path): \(error.localizedDescription)")
        }
        let secret = "# ringstore CURVE secret key \"\(name)\"; keep it private\npublic-key \(keys.publicKey)\nsecret-key \(keys.secretKey.z85)\n"
        try create(secretPath, contents: secret, mode: 0o600)
        try create(publicPath, contents: "\(keys.publicKey)\n", mode: 0o644)
    }

    /// The text of a secret file (a key, the RESP passwords), which only its
    /// owner may read or write (as ssh insists of a private key: a secret
    /// others can read is no secret).
    public static func readSecret(_ path: URL) throws(KeyFileError) -> String {
        var status = stat()
        if stat(path.path, &status) == 0, status.st_mode & 0o077 != 0 {
            throw KeyFileError("\(path.path) is readable or writable by others (mode \(String(status.st_mode & 0o777, radix: 8))): " +
                               "chmod 600 it, and replace the secret if anyone may have read it")
        }
        return try read(path)
    }

    /// The pair in a secret file.
    public static func readPair(_ path: URL) throws(KeyFileError) -> CurveKeyPair {
        let text = try readSecret(path)
        var fields: [String: CurveKey] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let key = CurveKey(parts[1]) else { continue }
            fields[String(parts[0])] = key
        }
        guard let publicKey = fields["public-key"], let secretKey = fields["secret-key"] else {
            throw KeyFileError("\(path.path) holds no public-key and secret-key lines")
        }
        guard let pair = CurveKeyPair(publicKey: publicKey, secretKey: secretKey) else {
            throw KeyFileError("\(path.path): the public key is not the secret key's")
        }
        return pair
    }

    /// The public key in a `.pub` file (its first non-empty line).
    public static func readPublicKey(_ path: URL) throws(KeyFileError) -> CurveKey {
        let text = try read(path)
        // No comments here: a Z85 key may itself start with `#`.
        guard let line = text.split(separator: "\n").first(where: { !$0.allSatisfy(\.isWhitespace) }), let key = CurveKey(line) else {
            throw KeyFileError("\(path.path) holds no CURVE public key")
        }
        return key
    }

    /// The text of a key or allowlist file.
    static func read(_ path: URL) throws(KeyFileError) -> String {
        do {
            return try String(contentsOf: path, encoding: .utf8)
        } catch {
            throw KeyFileError("cannot read \(path.path): \(error.localizedDescription)")
        }
    }

    private static func create(_ path: URL, contents: String, mode: mode_t) throws(KeyFileError) {
        let descriptor = open(path.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw KeyFileError("cannot create \(path.path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(descriptor) == 0 else {
            throw KeyFileError("cannot write \(path.path): \(String(cString: strerror(errno)))")
        }
    }
}

/// A key file that cannot be written or read.
public struct KeyFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
