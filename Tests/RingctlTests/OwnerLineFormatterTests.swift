import Testing

import Ring
@testable import RingctlCommands
import TestKit

@Suite("Owner lines")
struct OwnerLineFormatterTests {
    /// Feeds `input` to a formatter in pieces split at `cuts`, returning the output and the formatter.
    private static func format(
        _ input: [UInt8], ring: HashRing, replicas: Int, cuts: [Int]
    ) throws -> ([UInt8], OwnerLineFormatter) {
        var formatter = try OwnerLineFormatter(ring: ring, replicas: replicas)
        var output: [UInt8] = []
        var start = 0
        for cut in cuts + [input.count] where cut >= start {
            input[start..<cut].withUnsafeBytes { formatter.consume($0, into: &output) }
            start = cut
        }
        formatter.finish(into: &output)
        return (output, formatter)
    }

    /// The expected output, built from the public lookup API.
    private static func expected(_ keys: [[UInt8]], ring: HashRing, replicas: Int) throws -> [UInt8] {
        var output: [UInt8] = []
        for key in keys {
            output += key
            for member in try ring.preferenceList(forKey: key, replicas: replicas) {
                output += Array(" \(member.address)".utf8)
            }
            output.append(UInt8(ascii: "\n"))
        }
        return output
    }

    @Test("replica counts below 1 are refused", arguments: [0, -1])
    func invalidReplicas(replicas: Int) throws {
        let ring = try HashRing(members: localMembers(3))
        #expect(throws: RingError.invalidReplicas) { try OwnerLineFormatter(ring: ring, replicas: replicas) }
    }

    @Test("lines split anywhere across chunks give the same output", arguments: [1, 3])
    func chunking(replicas: Int) throws {
        let ring = try HashRing(members: localMembers(4))
        let keys: [[UInt8]] = [Array("alpha".utf8), Array("ключ".utf8), [0x00, 0xFF, 0x7F], Array("k e y".utf8)]
        let input = keys.flatMap { $0 + [UInt8(ascii: "\n")] }
        let want = try Self.expected(keys, ring: ring, replicas: replicas)
        for cut in 0...input.count {
            let (output, formatter) = try Self.format(input, ring: ring, replicas: replicas, cuts: [cut])
            #expect(output == want, "cut at \(cut)")
            #expect(formatter.lineCount == keys.count && formatter.emptyLineCount == 0)
        }
        // One byte at a time.
        let (output, _) = try Self.format(input, ring: ring, replicas: replicas, cuts: Array(0...input.count))
        #expect(output == want)
    }

    @Test("CRLF line ends, a last line without newline, and empty lines")
    func lineEnds() throws {
        let ring = try HashRing(members: localMembers(3))
        let input = Array("a\r\nb\n\n\r\nc".utf8)
        let (output, formatter) = try Self.format(input, ring: ring, replicas: 2, cuts: [2])
        #expect(output == (try Self.expected([[97], [98], [99]], ring: ring, replicas: 2)))
        #expect(formatter.lineCount == 5)
        #expect(formatter.emptyLineCount == 2)
        #expect(formatter.firstEmptyLine == 3)
    }

    @Test("a single key line, and an empty key refused")
    func singleKey() throws {
        let ring = try HashRing(members: localMembers(5))
        let formatter = try OwnerLineFormatter(ring: ring, replicas: 9)
        var output: [UInt8] = []
        try Array("user:42".utf8).withUnsafeBytes { try formatter.appendLine(forKey: $0, to: &output) }
        #expect(output == (try Self.expected([Array("user:42".utf8)], ring: ring, replicas: 5)))
        #expect(throws: RingError.emptyKey) {
            try [UInt8]().withUnsafeBytes { try formatter.appendLine(forKey: $0, to: &output) }
        }
    }

    @Test("many random keys match the lookup API")
    func randomKeysMatch() throws {
        let ring = try HashRing(members: localMembers(12), density: 64)
        var generator = SeededGenerator(seed: 7)
        let keys = randomKeys(3_000, using: &generator).map { key in
            key.map { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") ? UInt8(ascii: "x") : $0 }
        }
        let input = keys.flatMap { $0 + [UInt8(ascii: "\n")] }
        let cuts = (0..<40).map { _ in Int.random(in: 0...input.count, using: &generator) }.sorted()
        let (output, formatter) = try Self.format(input, ring: ring, replicas: 3, cuts: cuts)
        #expect(output == (try Self.expected(keys, ring: ring, replicas: 3)))
        #expect(formatter.lineCount == keys.count)
    }
}
