import RPC

/// Registers a repeating timer: `body` runs every `interval` on the reactor
/// thread, first after one interval. A component gets one from its owner in
/// `start(every:)` rather than registering timers in its initialiser, so making
/// it starts nothing and a test can drive its timers by hand.
typealias RepeatingTimers = (_ interval: Duration, _ body: @escaping () -> Void) -> Void

extension Reactor {
    /// ``every(_:_:)`` as ``RepeatingTimers``.
    var repeatingTimers: RepeatingTimers {
        { [unowned self] interval, body in every(interval, body) }
    }
}
