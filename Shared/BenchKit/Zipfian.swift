#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Item indices 0..<items drawn with a Zipfian distribution: index `i` with
/// probability proportional to 1/(i+1)^theta, so index 0 is the hottest. The
/// generator of Gray et al., "Quickly generating billion-record synthetic
/// databases" (SIGMOD 1994), as YCSB uses it; theta 0.99 is YCSB's default
/// skew. Theta 0 is uniform. Setting it up costs one pass over the items.
public struct Zipfian: Sendable {
    public let items: Int
    public let theta: Double
    private let zetaN: Double
    private let alpha: Double
    private let eta: Double
    private let halfPowTheta: Double

    /// `theta` in 0..<1.
    public init(items: Int, theta: Double) {
        precondition(items >= 1 && theta >= 0 && theta < 1)
        self.items = items
        self.theta = theta
        var zeta = 0.0
        for rank in 1...items { zeta += 1 / pow(Double(rank), theta) }
        zetaN = zeta
        let zeta2 = 1 + 1 / pow(2, theta)
        alpha = 1 / (1 - theta)
        eta = items > 1 ? (1 - pow(2 / Double(items), 1 - theta)) / (1 - zeta2 / zetaN) : 0
        halfPowTheta = pow(0.5, theta)
    }

    /// The next index, from a uniform `u` in [0, 1).
    public func index(unit u: Double) -> Int {
        if theta == 0 { return min(items - 1, Int(u * Double(items))) }
        let scaled = u * zetaN
        if scaled < 1 { return 0 }
        if scaled < 1 + halfPowTheta { return min(1, items - 1) }
        return min(items - 1, Int(Double(items) * pow(eta * u - eta + 1, alpha)))
    }

    public func next(using generator: inout SplitMix64) -> Int { index(unit: generator.unit()) }
}
