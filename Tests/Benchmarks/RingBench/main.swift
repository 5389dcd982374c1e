// ringstore-bench-ring: how fast the ring places keys, builds and diffs.
//
//   swift run -c release ringstore-bench-ring
//
// Each figure is the median of several timed runs after a warm-up run, on a
// monotonic clock (ContinuousClock). Work happens in functions on locals, not
// on top-level globals, and every result feeds a checksum that is printed, so
// the optimiser can drop nothing.

import Basics
import Ring

/// Runs `body` once to warm up, then `runs` times; returns the median duration in seconds.
func medianSeconds(runs: Int, _ body: () throws -> Int) rethrows -> (seconds: Double, checksum: Int) {
    let clock = ContinuousClock()
    var checksum = try body()
    var samples: [Double] = []
    for _ in 0..<runs {
        let start = clock.now
        checksum &+= try body()
        let elapsed = start.duration(to: clock.now)
        samples.append(elapsed.inSeconds)
    }
    samples.sort()
    return (samples[samples.count / 2], checksum)
}

/// `count` members on distinct hosts, all on port 7501, weight 1.
func members(_ count: Int) throws -> [RingMember] {
    try (0..<count).map { try RingMember(host: "10.0.\($0 / 250).\($0 % 250 + 1)", port: 7501) }
}

func format(_ value: Double, decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    return "\(Double(Int(value * scale + 0.5)) / scale)"
}

/// Deterministic keys like "user:10001234:profile", as bytes.
func makeKeys(_ count: Int) -> [[UInt8]] {
    (0..<count).map { Array("user:\(10_000_000 + $0):profile".utf8) }
}

func benchmarkLookups(keys: [[UInt8]], density: Int) throws -> Int {
    let ring = try HashRing(members: members(100), density: density)
    let asMembers = try medianSeconds(runs: 5) {
        var sum = 0
        for key in keys {
            sum &+= try ring.preferenceList(forKey: key, replicas: 3)[2].port
        }
        return sum
    }
    var indices: [Int] = []
    indices.reserveCapacity(3)
    let asIndices = try medianSeconds(runs: 5) {
        var sum = 0
        for key in keys {
            try ring.preferenceIndices(forPosition: HashRing.position(forKey: key), replicas: 3, into: &indices)
            sum &+= indices[2]
        }
        return sum
    }
    let positions = try keys.map { try HashRing.position(forKey: $0) }
    let walkOnly = try medianSeconds(runs: 5) {
        var sum = 0
        for position in positions {
            try ring.preferenceIndices(forPosition: position, replicas: 3, into: &indices)
            sum &+= indices[2]
        }
        return sum
    }
    let rate = { (seconds: Double) in format(Double(keys.count) / seconds / 1e6, decimals: 2) }
    print(
        "lookup   100 members, density \(density) (\(ring.pointCount) points), key -> 3 replicas: "
            + "\(rate(asIndices.seconds)) M keys/s (indices), \(rate(asMembers.seconds)) M keys/s ([RingMember]); "
            + "position -> 3 replicas without the MD5: \(rate(walkOnly.seconds)) M/s"
    )
    return asMembers.checksum &+ asIndices.checksum &+ walkOnly.checksum
}

func benchmarkBuild() throws -> Int {
    let thousand = try members(1000)
    let build = try medianSeconds(runs: 7) { try HashRing(members: thousand).pointCount }
    print("build    1000 members, density 40 (160000 points): \(format(build.seconds * 1000, decimals: 2)) ms")
    return build.checksum
}

func benchmarkDiff() throws -> Int {
    let hundred = try members(100)
    let before = try HashRing(members: hundred)
    let after = try HashRing(members: hundred + [RingMember(host: "10.9.9.9", port: 7501)])
    let diff = try medianSeconds(runs: 9) { try before.diff(to: after, replicas: 3).changes.count }
    let arcs = try before.diff(to: after, replicas: 3).changes.count
    print(
        "diff     join 100 -> 101 members, density 40, replicas 3: "
            + "\(format(diff.seconds * 1000, decimals: 2)) ms (\(arcs) changed arcs)"
    )
    return diff.checksum
}

func reportBalance() throws {
    for (count, density) in [(10, 40), (10, 512), (100, 40), (100, 512)] {
        let report = try HashRing(members: members(count), density: density).loadReport()
        print("balance  \(count) members, density \(density): max/mean primary load \(format(report.maxOverMean, decimals: 4))")
    }
}

func main() throws {
    print("ringstore-bench-ring (median of runs after a warm-up)")
    let keys = makeKeys(200_000)
    var checksum = 0
    checksum &+= try benchmarkLookups(keys: keys, density: 40)
    checksum &+= try benchmarkLookups(keys: keys, density: 512)
    checksum &+= try benchmarkBuild()
    checksum &+= try benchmarkDiff()
    try reportBalance()
    print("checksum {\(checksum)}")
}

try main()
