import Testing
import TestKit

@testable import Ring

@Suite("Bad input and key forms")
struct RingInputTests {
    @Test(
        "malformed addresses are refused",
        arguments: [
            "", "127.0.0.1", "127.0.0.1:", ":7501", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:-1",
            "127.0.0.1:+80", "127.0.0.1:07501", "127.0.0.1:75x1", "host name:7501", "host\n:7501",
            "::1:7501", "[::1:7501", "[]:7501", "h\u{00e9}te:7501", "127.0.0.1:7501 ", "a,b:7501",
        ]
    )
    func malformedAddress(address: String) {
        #expect(throws: RingError.malformedAddress) { try RingMember(address: address) }
    }

    @Test("well-formed addresses are accepted as given", arguments: [
        "127.0.0.1:7501", "node-a.ringstore.test:1", "localhost:65535", "[::1]:7501", "[fe80::1%eth0]:7600",
        "under_score.example:8080",
    ])
    func wellFormedAddress(address: String) throws {
        let member = try RingMember(address: address)
        #expect(member.address == address)
        #expect(member.weight == 1)
    }

    @Test("host and port are checked when given apart")
    func hostAndPort() throws {
        #expect(throws: RingError.malformedAddress) { try RingMember(host: "", port: 7501) }
        #expect(throws: RingError.malformedAddress) { try RingMember(host: "a", port: 0) }
        #expect(throws: RingError.malformedAddress) { try RingMember(host: "a", port: 70000) }
        let member = try RingMember(host: "a", port: 7501, weight: 3)
        #expect(member.address == "a:7501")
        #expect(member.description == "a:7501=3")
    }

    @Test("weights below 1 are refused", arguments: [0, -1, Int.min])
    func invalidWeight(weight: Int) {
        #expect(throws: RingError.invalidWeight) { try RingMember(address: "127.0.0.1:7501", weight: weight) }
    }

    @Test("command-line member specifications")
    func parsing() throws {
        #expect(try RingMember(parsing: "127.0.0.1:7501") == RingMember(address: "127.0.0.1:7501"))
        #expect(try RingMember(parsing: "127.0.0.1:7501=3").weight == 3)
        #expect(throws: RingError.invalidWeight) { try RingMember(parsing: "127.0.0.1:7501=0") }
        #expect(throws: RingError.invalidWeight) { try RingMember(parsing: "127.0.0.1:7501=-2") }
        #expect(throws: RingError.invalidWeight) { try RingMember(parsing: "127.0.0.1:7501=") }
        #expect(throws: RingError.invalidWeight) { try RingMember(parsing: "127.0.0.1:7501=99999999999") }
        #expect(throws: RingError.malformedAddress) { try RingMember(parsing: "127.0.0.1=2") }
    }

    @Test("an empty membership is refused")
    func emptyMembership() {
        #expect(throws: RingError.emptyMembership) { try HashRing(members: []) }
    }

    @Test("duplicate addresses are refused, whatever their weights")
    func duplicateMembers() throws {
        let members = try localMembers(3) + [RingMember(address: "127.0.0.1:7502", weight: 2)]
        #expect(throws: RingError.duplicateMember) { try HashRing(members: members) }
    }

    @Test("density below 1 is refused", arguments: [0, -1, -40])
    func invalidDensity(density: Int) throws {
        let members = try localMembers(2)
        #expect(throws: RingError.invalidDensity) { try HashRing(members: members, density: density) }
    }

    @Test("a ring too large to build is refused, not crashed on")
    func ringTooLarge() throws {
        let heavy = try RingMember(address: "127.0.0.1:7501", weight: Int.max / 2)
        #expect(throws: RingError.ringTooLarge) { try HashRing(members: [heavy]) }
        let members = try localMembers(2)
        #expect(throws: RingError.ringTooLarge) { try HashRing(members: members, density: Int.max) }
    }

    @Test("empty keys are refused in every form")
    func emptyKey() throws {
        let ring = try HashRing(members: localMembers(3))
        #expect(throws: RingError.emptyKey) { try HashRing.position(forKey: "") }
        #expect(throws: RingError.emptyKey) { try HashRing.position(forKey: [UInt8]()) }
        #expect(throws: RingError.emptyKey) { try HashRing.position(forKey: UnsafeRawBufferPointer(start: nil, count: 0)) }
        #expect(throws: RingError.emptyKey) { try ring.owner(forKey: "") }
        #expect(throws: RingError.emptyKey) { try ring.preferenceList(forKey: [UInt8](), replicas: 2) }
    }

    @Test("replica counts below 1 are refused", arguments: [0, -1])
    func invalidReplicas(replicas: Int) throws {
        let ring = try HashRing(members: localMembers(3))
        #expect(throws: RingError.invalidReplicas) { try ring.preferenceList(forKey: "k", replicas: replicas) }
        #expect(throws: RingError.invalidReplicas) { try ring.preferenceList(forPosition: 7, replicas: replicas) }
        var indices: [Int] = []
        #expect(throws: RingError.invalidReplicas) {
            try ring.preferenceIndices(forPosition: 7, replicas: replicas, into: &indices)
        }
        #expect(throws: RingError.invalidReplicas) { try ring.diff(to: ring, replicas: replicas) }
    }

    @Test("errors compare by kind and describe the input")
    func errorDescriptions() {
        do {
            _ = try RingMember(address: "nope")
            Issue.record("no error")
        } catch {
            #expect(error == .malformedAddress)
            #expect(error != .emptyKey)
            #expect(error.description.contains("nope"))
        }
    }

    @Test("binary, Unicode and non-contiguous keys hash their bytes")
    func keyForms() throws {
        let ring = try HashRing(members: localMembers(5))
        let unicode = "ключ-🔑-鍵"
        #expect(try HashRing.position(forKey: unicode) == HashRing.position(forKey: Array(unicode.utf8)))
        #expect(try HashRing.position(forKey: unicode) == HashRing.position(forKey: unicode.utf8))
        // NFC and NFD spellings are different bytes, so they may land apart; both work.
        _ = try ring.owner(forKey: "caf\u{e9}")
        _ = try ring.owner(forKey: "cafe\u{301}")
        let binary: [UInt8] = [0x00, 0xFF, 0x0A, 0x0D, 0x80]
        let nonContiguous = repeatElement(UInt8(0x41), count: 5)
        #expect(try HashRing.position(forKey: nonContiguous) == HashRing.position(forKey: "AAAAA"))
        #expect(try HashRing.position(forKey: binary[...]) == HashRing.position(forKey: binary))
        let list = try ring.preferenceList(forKey: binary, replicas: 3)
        #expect(list.count == 3)
        #expect(Set(list.map(\.address)).count == 3)
    }
}
