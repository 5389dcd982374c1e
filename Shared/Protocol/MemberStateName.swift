extension WireMemberState {
    /// The lower-case name operators see: up, suspect, down, leaving (or unknown).
    public var name: String {
        switch self {
        case .up: "up"
        case .suspect: "suspect"
        case .down: "down"
        case .leaving: "leaving"
        default: "unknown"
        }
    }

    /// The state named `name` (as `name` spells it); `nil` for anything else,
    /// such as "removed".
    public init?(name: String) {
        switch name {
        case "up": self = .up
        case "suspect": self = .suspect
        case "down": self = .down
        case "leaving": self = .leaving
        default: return nil
        }
    }
}
