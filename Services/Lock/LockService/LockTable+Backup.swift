/// What a backup takes from the table and what a restore gives back.
extension LockTable {
    /// Every name the table remembers (held, waited for, or free and not
    /// forgotten yet), sorted.
    public var knownNamesSorted: [String] { entries.keys.sorted() }

    /// Raises the token counter to at least `token` (a restored backup's), so
    /// that every token granted from now on is above it; never lowers it.
    /// Returns whether it rose; the new counter is a durable change.
    public mutating func importTokens(atLeast token: UInt64) -> Bool {
        guard token > lastToken else { return false }
        lastToken = token
        tokenChanged = true
        return true
    }
}
