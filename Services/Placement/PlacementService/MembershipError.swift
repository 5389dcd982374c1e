import RPC

/// Why a membership request was refused; the state is unchanged.
public struct MembershipError: Error, Equatable, Sendable, CustomStringConvertible {
    private enum Code: Equatable, Sendable {
        case alreadyMember, notMember, malformedAddress, invalidWeight, notLeaving, alreadyLeaving, memberUp
    }

    private let code: Code
    /// What was wrong, for the operator.
    public let message: String

    private init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public static func == (lhs: MembershipError, rhs: MembershipError) -> Bool { lhs.code == rhs.code }
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

    /// The gRPC-style status for this refusal.
    public var rpcError: RPCError {
        switch code {
        case .alreadyMember: RPCError(.alreadyExists, message)
        case .notMember: RPCError(.notFound, message)
        case .malformedAddress, .invalidWeight: RPCError(.invalidArgument, message)
        case .notLeaving, .alreadyLeaving, .memberUp: RPCError(.failedPrecondition, message)
        }
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
