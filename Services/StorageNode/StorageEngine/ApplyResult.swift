/// What merging one record did to the stored state.
public enum ApplyResult: Hashable, Sendable {
    /// The record was newer than what was stored (or the key was absent) and is now stored.
    case applied
    /// The stored record was newer or equal and was kept; `stored` is its version.
    case superseded(stored: Version)

    /// Whether the record was written.
    public var wasApplied: Bool {
        if case .applied = self { return true }
        return false
    }
}
