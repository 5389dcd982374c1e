import BenchKit

/// A tiny seeded generator (SplitMix64), so randomised tests replay exactly.
public typealias SeededGenerator = SplitMix64
