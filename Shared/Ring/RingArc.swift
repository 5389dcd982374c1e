/// A contiguous stretch of ring positions, clockwise from ``first`` through ``last``, both included.
///
/// When `first <= last` the arc is the plain range `first...last`. When
/// `first > last` it wraps past the top of the ring: `first...UInt32.max`
/// followed by `0...last`. The whole ring is `0...UInt32.max`. Closed bounds
/// map directly onto range scans over rows keyed by position (see ``ranges``).
public struct RingArc: Hashable, Sendable, CustomStringConvertible {
    /// The first position in the arc.
    public let first: UInt32
    /// The last position in the arc (included).
    public let last: UInt32

    /// The arc from `first` clockwise through `last`; it wraps when `first > last`.
    public init(first: UInt32, last: UInt32) {
        self.first = first
        self.last = last
    }

    /// Every position, `0...UInt32.max`.
    public static let wholeRing = RingArc(first: 0, last: .max)

    /// Whether the arc crosses from `UInt32.max` to 0.
    public var wraps: Bool { first > last }

    /// The number of positions in the arc, 1 through 2^32.
    public var length: UInt64 {
        wraps ? (UInt64(UInt32.max) - UInt64(first) + 1) + UInt64(last) + 1 : UInt64(last) - UInt64(first) + 1
    }

    /// Whether `position` lies on the arc.
    public func contains(_ position: UInt32) -> Bool {
        wraps ? position >= first || position <= last : position >= first && position <= last
    }

    /// The arc as one or two non-wrapping closed ranges in ascending order, for range scans.
    public var ranges: [ClosedRange<UInt32>] {
        wraps ? [0...last, first...UInt32.max] : [first...last]
    }

    /// `[first...last]`, marked when the arc wraps.
    public var description: String {
        "[\(first)...\(last)]\(wraps ? " (wraps)" : "")"
    }
}
