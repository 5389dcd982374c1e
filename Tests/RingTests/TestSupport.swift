@testable import Ring
import TestKit

/// The bytes that a hex string spells, or nil if it is not hex.
func bytes(fromHex hex: Substring) -> [UInt8]? {
    let digits = Array(hex.utf8)
    guard digits.count % 2 == 0 else { return nil }
    func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        default: nil
        }
    }
    var result: [UInt8] = []
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
        result.append(high << 4 | low)
    }
    return result
}

extension HashRing {
    /// The preference list as addresses, for compact comparisons.
    func addresses(forPosition position: UInt32, replicas: Int) throws -> [String] {
        try preferenceList(forPosition: position, replicas: replicas).map(\.address)
    }

    /// The point positions, for tests that probe every boundary.
    var pointPositions: [UInt32] { points.map { UInt32(truncatingIfNeeded: $0 >> 32) } }

    /// The member index of each point.
    var pointMembers: [Int] { points.map { Int(UInt32(truncatingIfNeeded: $0)) } }
}
