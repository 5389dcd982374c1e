import CLibCrypto

/// The MD5-based hashing that Ketama defines: key positions and member points.
@usableFromInline
enum KetamaHash {
    /// The four little-endian `UInt32`s of the MD5 digest of `bytes`, in byte-offset order 0, 4, 8, 12.
    @usableFromInline
    static func digestWords(_ bytes: UnsafeRawBufferPointer) -> (UInt32, UInt32, UInt32, UInt32) {
        var digest: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &digest) { out in
            ringstore_md5(bytes.baseAddress, bytes.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return withUnsafeBytes(of: &digest) { raw in
            (
                UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)),
                UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
                UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
                UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
            )
        }
    }

    /// A key's ring position: the little-endian `UInt32` of the first four bytes of MD5(key).
    static func position(_ key: UnsafeRawBufferPointer) throws(RingError) -> UInt32 {
        guard !key.isEmpty else { throw RingError.emptyKey }
        return digestWords(key).0
    }

    /// The points of one member: for i in 0 ..< digests, the four words of MD5("<address>-<i>").
    static func appendPoints(
        address: String,
        digests: Int,
        memberIndex: UInt32,
        to points: inout [UInt64]
    ) {
        var text = Array(address.utf8)
        text.append(UInt8(ascii: "-"))
        let prefixLength = text.count
        for i in 0..<digests {
            text.removeSubrange(prefixLength...)
            appendDecimal(i, to: &text)
            let words = text.withUnsafeBytes { digestWords($0) }
            let tag = UInt64(memberIndex)
            points.append(UInt64(words.0) << 32 | tag)
            points.append(UInt64(words.1) << 32 | tag)
            points.append(UInt64(words.2) << 32 | tag)
            points.append(UInt64(words.3) << 32 | tag)
        }
    }

    private static func appendDecimal(_ value: Int, to text: inout [UInt8]) {
        let start = text.count
        var rest = value
        repeat {
            text.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        text[start...].reverse()
    }
}
