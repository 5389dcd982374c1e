import Ring

/// Members `127.0.0.1:<firstPort + i>` for i in 0 ..< count, all of weight 1.
public func localMembers(_ count: Int, firstPort: Int = 7501) throws -> [RingMember] {
    try (0..<count).map { try RingMember(host: "127.0.0.1", port: firstPort + $0) }
}

/// Random keys of 1...24 random bytes each.
public func randomKeys(_ count: Int, using generator: inout SeededGenerator) -> [[UInt8]] {
    (0..<count).map { _ in
        (0..<Int.random(in: 1...24, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}
