/// Why a ring, a member or a lookup was refused.
///
/// A struct around a private code, so that new failure kinds can be added
/// without breaking callers that switch over them. Compare against the static
/// constants (`error == .emptyKey`); equality looks at the kind only, while
/// ``detail`` says what exactly was wrong for people to read.
public struct RingError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: String, Hashable, Sendable {
        case emptyMembership = "empty membership"
        case duplicateMember = "duplicate member"
        case invalidWeight = "invalid weight"
        case invalidDensity = "invalid density"
        case malformedAddress = "malformed address"
        case emptyKey = "empty key"
        case invalidReplicas = "invalid replica count"
        case ringTooLarge = "ring too large"
    }

    private let code: Code

    /// What was wrong with the input, for error messages; not part of equality.
    public let detail: String

    private init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail
    }

    /// A ring needs at least one member.
    public static let emptyMembership = RingError(.emptyMembership)
    /// Two members share one address; an address identifies a member.
    public static let duplicateMember = RingError(.duplicateMember)
    /// A member's weight is zero or negative.
    public static let invalidWeight = RingError(.invalidWeight)
    /// The density (digests per unit of weight) is below 1.
    public static let invalidDensity = RingError(.invalidDensity)
    /// An address is not `host:port` with a non-empty host and a port in 1...65535.
    public static let malformedAddress = RingError(.malformedAddress)
    /// Keys must hold at least one byte.
    public static let emptyKey = RingError(.emptyKey)
    /// A preference list must ask for at least one replica.
    public static let invalidReplicas = RingError(.invalidReplicas)
    /// Weights times density would need more points than ``HashRing/maximumPointCount``.
    public static let ringTooLarge = RingError(.ringTooLarge)

    /// The same kind of error, carrying a description of the offending input.
    public func with(detail: String) -> RingError {
        RingError(code, detail)
    }

    /// Errors are equal when they are of the same kind, whatever their details.
    public static func == (lhs: RingError, rhs: RingError) -> Bool {
        lhs.code == rhs.code
    }

    /// Hashes the kind only, consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }

    /// The kind of error, then the details, e.g. `empty key` or `invalid weight: a:1 has weight 0; ...`.
    public var description: String {
        detail.isEmpty ? code.rawValue : "\(code.rawValue): \(detail)"
    }
}
