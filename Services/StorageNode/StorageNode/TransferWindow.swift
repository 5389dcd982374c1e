import StorageEngine

/// The sending side of one migration transfer, with no I/O: where the next batch
/// is read from, the batches sent and not yet confirmed (no more than the
/// receiver's credit), the cursor the batches confirmed in order reached (saved,
/// so a restart resumes there), and when the next batch may go (the rate limit,
/// and a backoff after a failure). The sender's pump reads the rows and sends
/// them; callers pass the time.
struct TransferWindow {
    /// Unanswered batches in send order, with the cursor each confirms.
    typealias Batch = (number: UInt64, end: MigrationCursor, done: Bool)

    /// How far the batches confirmed in order reach: a restart resumes here.
    private(set) var confirmed: MigrationCursor
    /// Where the next batch is read from.
    private(set) var next: MigrationCursor
    /// Every arc was read to its end.
    private(set) var exhausted = false
    private(set) var inFlight: [Batch] = []
    /// How many batches the receiver lets this transfer have unanswered, as its last reply said.
    private(set) var credit = 1
    /// Incremented on every restart from `confirmed`, so late replies are ignored.
    private(set) var generation = 0
    /// Failures since the last confirmed batch.
    private(set) var failures = 0
    /// Spaces the batches by their bytes, and holds them back after a failure.
    private(set) var pacer: RatePacer
    private var nextNumber: UInt64 = 1

    /// A window resuming at `cursor`, sending `bytesPerSecond` (0: unlimited) from `now`.
    init(from cursor: MigrationCursor, bytesPerSecond: Int, now: ContinuousClock.Instant) {
        confirmed = cursor
        next = cursor
        pacer = RatePacer(bytesPerSecond: bytesPerSecond, now: now)
    }

    /// Whether the credit lets another batch be read and sent (the pacer aside).
    var hasRoom: Bool { !exhausted && inFlight.count < max(1, credit) }
    /// Every row was read and every batch confirmed.
    var isDrained: Bool { exhausted && inFlight.isEmpty }

    /// How long a batch that wants to go at `now` must wait; `nil`: it may go.
    mutating func wait(at now: ContinuousClock.Instant) -> Duration? {
        pacer.wait(at: now)
    }

    // MARK: Reading

    /// `records` were read from the current arc: the next read starts after them.
    mutating func read(_ records: [VersionedRecord]) {
        guard let last = records.last else { return }
        next.after = last.cursor
        next.keys += records.count
        next.bytes += records.byteSize
    }

    /// The current arc is read to its end: the next read starts the next arc.
    mutating func finishArc() {
        next.arcIndex += 1
        next.after = nil
    }

    /// No arc is left to read.
    mutating func finishReading() {
        exhausted = true
    }

    // MARK: Sending and answers

    /// A batch of `bytes`, read up to `next`, goes out at `now`; returns its number.
    mutating func send(bytes: Int, at now: ContinuousClock.Instant) -> UInt64 {
        let number = nextNumber
        nextNumber += 1
        inFlight.append((number, next, false))
        pacer.charge(bytes, at: now)
        return number
    }

    /// What a confirmation did.
    enum Confirmation: Equatable {
        /// No batch of that number is in flight (it was sent before a restart): ignored.
        case unknown
        /// Recorded; an earlier batch is still unanswered, so `confirmed` stays.
        case held
        /// `confirmed` moved on: the cursor is worth saving.
        case advanced
    }

    /// The receiver confirmed batch `number` and grants `credit` batches unanswered.
    mutating func confirm(_ number: UInt64, credit: Int) -> Confirmation {
        guard let index = inFlight.firstIndex(where: { $0.number == number }) else { return .unknown }
        inFlight[index].done = true
        self.credit = max(1, credit)
        failures = 0
        var advanced = false
        while let first = inFlight.first, first.done {
            confirmed = first.end
            inFlight.removeFirst()
            advanced = true
        }
        return advanced ? .advanced : .held
    }

    /// A batch failed at `now`: everything after `confirmed` is read and sent again,
    /// one batch at a time, after a backoff that doubles with each failure in a row
    /// (0.5 s up to 5 s). Returns the backoff.
    mutating func fail(at now: ContinuousClock.Instant) -> Duration {
        generation += 1
        inFlight.removeAll()
        next = confirmed
        exhausted = false
        failures += 1
        credit = 1
        let backoff = Duration.milliseconds(min(5000, 250 << min(failures, 5)))
        pacer.hold(until: now + backoff)
        return backoff
    }
}
