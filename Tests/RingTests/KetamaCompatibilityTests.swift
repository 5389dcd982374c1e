// The reference owners in KetamaVectors.swift come from libmemcached's weighted Ketama
// mode, cross-checked with an independent Python (hashlib) libketama. To regenerate,
// from the repository root (Debian: apt-get install -y libmemcached-dev):
//
//   cc -O2 -o /tmp/libmemcached_owners Tests/RingTests/Vectors/libmemcached_owners.c $(pkg-config --cflags --libs libmemcached)
//   python3 Tests/RingTests/Vectors/ketama_vectors.py /tmp/libmemcached_owners > Tests/RingTests/KetamaVectors.swift

import Testing

@testable import Ring

@Suite("Ketama compatibility")
struct KetamaCompatibilityTests {
    @Test("owners equal libmemcached's weighted Ketama at default density", arguments: KetamaVectors.lists)
    func ownersMatchLibmemcached(list: KetamaVectors.ServerList) throws {
        let ring = try HashRing(members: list.servers.map { try RingMember(address: $0) })
        #expect(ring.pointCount == 160 * list.servers.count)
        var checked = 0
        var binaryKeys = 0
        for line in list.table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            try #require(fields.count == 2)
            let key = try #require(bytes(fromHex: fields[0]))
            if String(validating: key, as: UTF8.self) == nil { binaryKeys += 1 }
            #expect(try ring.owner(forKey: key).address == String(fields[1]), "key \(fields[0])")
            #expect(try ring.preferenceList(forKey: key, replicas: 1).map(\.address) == [String(fields[1])])
            checked += 1
        }
        #expect(checked >= 300)
        #expect(binaryKeys >= 40)
    }

    @Test("key position is the little-endian first word of MD5(key)")
    func keyPositions() throws {
        // Values from Python: int.from_bytes(hashlib.md5(key).digest()[:4], "little").
        #expect(try HashRing.position(forKey: "key-0") == 2_123_055_796)
        #expect(try HashRing.position(forKey: [0x00, 0xFF] as [UInt8]) == 4_013_194_704)
        #expect(try HashRing.position(forKey: "ключ") == 1_719_363_011)
    }

    @Test("a member's points are the four words of MD5(\"host:port-i\")")
    func memberPoints() throws {
        let ring = try HashRing(members: [RingMember(address: "127.0.0.1:7501")])
        // MD5("127.0.0.1:7501-0") and MD5("127.0.0.1:7501-39") as little-endian words, from Python.
        let expected: [UInt32] = [
            3_737_870_323, 97_077_957, 2_871_174_603, 1_224_073_939,
            932_078_262, 3_408_095_613, 3_182_218_616, 3_887_108_650,
        ]
        for value in expected {
            #expect(ring.pointPositions.contains(value))
        }
        #expect(ring.pointPositions == ring.pointPositions.sorted())
    }
}
