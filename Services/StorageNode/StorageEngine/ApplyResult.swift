/// What merging one record did to the stored state.
public enum ApplyResult: Hashable, Sendable {
    /// The record was newer than what was stored (or the key was absent) and is now stored.
    case applied
    /// The stored record was newer or equal and was kept; `stored` is its version.
    case superseded(stored: Version)
    /// A fenced record whose token is below the highest this replica has seen for its
    /// lock on its key (`highest`): a stale holder's write; nothing was written.
    case refused(highest: UInt64)

    /// Whether the record was written.
    public var wasApplied: Bool {
        if case .applied = self { return true }
        return false
    }
}
