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
}
