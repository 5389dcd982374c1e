import RPC

extension Reactor {
    /// Runs `step` now, then once per reactor turn while it returns `false`: long
    /// work (counting, hashing or deleting the rows of an arc) done in bounded
    /// pieces, with every socket and timer served in between, instead of holding
    /// one turn for a time that grows with the data.
    func runInSteps(_ step: @escaping () -> Bool) {
        guard !step() else { return }
        after(.zero) { [weak self] in self?.runInSteps(step) }
    }
}

/// How many rows one step of an arc-long job touches: a few milliseconds of work.
enum ArcSteps {
    static let rowsPerRead = 10_000
    static let rowsPerDelete = 5_000
}
