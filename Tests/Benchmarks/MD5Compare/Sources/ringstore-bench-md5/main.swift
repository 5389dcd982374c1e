// ringstore-bench-md5: a key's ring position (the little-endian first 4
// bytes of its MD5) through the ring's OpenSSL shim, as KetamaHash computes
// it, against swift-crypto's Insecure.MD5. Median of 7 timed runs over 1M
// keys after a warm-up; both must agree on every key.
import CLibCrypto
import Crypto

let keys: [[UInt8]] = (0..<1_000_000).map { Array("user:\(10_000_000 + $0):profile".utf8) }

func viaRing(_ key: [UInt8]) -> UInt32 {
    var digest: (UInt64, UInt64) = (0, 0)
    key.withUnsafeBytes { bytes in
        withUnsafeMutableBytes(of: &digest) { out in
            ringstore_md5(bytes.baseAddress, bytes.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }
    return UInt32(truncatingIfNeeded: UInt64(littleEndian: digest.0))
}

func viaSwiftCrypto(_ key: [UInt8]) -> UInt32 {
    Insecure.MD5.hash(data: key).withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
}

func medianSeconds(_ body: () -> UInt32) -> (seconds: Double, checksum: UInt32) {
    let clock = ContinuousClock()
    var checksum = body()
    var samples: [Double] = []
    for _ in 0..<7 {
        let start = clock.now
        checksum &+= body()
        let (seconds, attoseconds) = (clock.now - start).components
        samples.append(Double(seconds) + Double(attoseconds) / 1e18)
    }
    samples.sort()
    return (samples[3], checksum)
}

for key in keys.prefix(10_000) where viaRing(key) != viaSwiftCrypto(key) {
    fatalError("the two hashes disagree on \(String(decoding: key, as: UTF8.self))")
}
let ring = medianSeconds { keys.reduce(0) { $0 &+ viaRing($1) } }
let crypto = medianSeconds { keys.reduce(0) { $0 &+ viaSwiftCrypto($1) } }
func nanos(_ seconds: Double) -> Int { Int(seconds * 1e9 / Double(keys.count) + 0.5) }
print("ringstore-bench-md5: key -> ring position, \(keys.count) keys of 21 bytes (median of 7 runs)")
print("md5      OpenSSL shim (the ring): \(nanos(ring.seconds)) ns/key")
print("md5      swift-crypto Insecure.MD5: \(nanos(crypto.seconds)) ns/key")
print("md5      swift-crypto / OpenSSL: \(Double(Int(crypto.seconds / ring.seconds * 100 + 0.5)) / 100)x   checksum \(ring.checksum &+ crypto.checksum)")
