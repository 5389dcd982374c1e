/// Why a membership request was refused; the state is unchanged.
public struct MembershipError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What kind of refusal; the shell maps it to a status code.
    public enum Kind: Equatable, Sendable {
        case alreadyMember, notMember, malformedAddress, invalidWeight, notLeaving, alreadyLeaving, memberUp
    }

    public let kind: Kind
    /// What was wrong, for the operator.
    public let message: String

    private init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public static func == (lhs: MembershipError, rhs: MembershipError) -> Bool { lhs.kind == rhs.kind }
    public var description: String { message }

    public static func alreadyMember(_ address: String) -> MembershipError {
        MembershipError(.alreadyMember, "\(address) is already a member")
    }
    public static func notMember(_ address: String) -> MembershipError {
        MembershipError(.notMember, "\(address) is not a member (never joined, or removed)")
    }
    public static func malformedAddress(_ detail: String) -> MembershipError {
        MembershipError(.malformedAddress, detail)
    }
    public static func invalidWeight(_ detail: String) -> MembershipError {
        MembershipError(.invalidWeight, detail)
    }
    public static func notLeaving(_ address: String) -> MembershipError {
        MembershipError(.notLeaving, "\(address) is not leaving; only a leaving member completes a handoff")
    }
    public static func alreadyLeaving(_ address: String) -> MembershipError {
        MembershipError(.alreadyLeaving, "\(address) is already leaving")
    }
    public static func memberUp(_ address: String) -> MembershipError {
        MembershipError(.memberUp, "\(address) is up: remove is for a dead member; use leave to take a live one out "
            + "(it hands its arcs off first), or remove --force")
    }

    // One value of each kind, to compare with `==` (which compares kinds only).
    public static let alreadyMemberKind = MembershipError(.alreadyMember, "")
    public static let notMemberKind = MembershipError(.notMember, "")
    public static let malformedAddressKind = MembershipError(.malformedAddress, "")
    public static let invalidWeightKind = MembershipError(.invalidWeight, "")
    public static let notLeavingKind = MembershipError(.notLeaving, "")
    public static let alreadyLeavingKind = MembershipError(.alreadyLeaving, "")
    public static let memberUpKind = MembershipError(.memberUp, "")
}
