import CLibCrypto

/// SHA-256 over bytes fed in pieces, through OpenSSL's libcrypto (already
/// linked for the ring's MD5): the checksums of backup files, which a node
/// computes over its snapshot and `ringctl` over what it fetched and wrote.
///
/// One hasher per stream; not thread-safe. ``finish()`` ends it.
public final class SHA256Hasher {
    private var context: UnsafeMutableRawPointer?
    /// Bytes fed so far.
    public private(set) var count = 0

    /// A new hasher. Fails only when OpenSSL cannot allocate a context.
    public init() throws(StorageError) {
        guard let context = ringstore_sha256_new() else {
            throw StorageError.sqlite.with(message: "OpenSSL could not make a SHA-256 context")
        }
        self.context = context
    }

    deinit {
        if let context { ringstore_sha256_free(context) }
    }

    /// Feeds `bytes`.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let context, let base = bytes.baseAddress, !bytes.isEmpty else { return }
        // EVP_DigestUpdate fails only for a context in a bad state, which this class never makes.
        _ = ringstore_sha256_update(context, base, bytes.count)
        count += bytes.count
    }

    /// Feeds `bytes`.
    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest as 64 lowercase hex digits; the hasher cannot be fed after this.
    public func finish() -> String {
        guard let context else { return "" }
        self.context = nil
        var digest = [UInt8](repeating: 0, count: 32)
        let ok = digest.withUnsafeMutableBufferPointer { ringstore_sha256_final(context, $0.baseAddress) }
        ringstore_sha256_free(context)
        return ok == 1 ? Self.hex(digest) : ""
    }

    /// The SHA-256 of `bytes` in hex.
    public static func hex(of bytes: [UInt8]) throws(StorageError) -> String {
        let hasher = try SHA256Hasher()
        hasher.update(bytes)
        return hasher.finish()
    }

    /// The SHA-256 of the file at `path` in hex and its size, read in blocks of 1 MiB.
    public static func file(at path: String) throws(StorageError) -> (sha256: String, bytes: Int) {
        let hasher = try SHA256Hasher()
        let file = try SnapshotIO.openForReading(path)
        defer { SnapshotIO.close(file) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let read = try SnapshotIO.read(file, into: &buffer, at: Int64(hasher.count), path: path)
            if read == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[..<read])) }
        }
        return (hasher.finish(), hasher.count)
    }

    static func hex(_ digest: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(digest.count * 2)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
