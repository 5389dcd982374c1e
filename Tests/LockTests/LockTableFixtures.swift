@testable import LockService
import RingProtocol
import Testing
import TestKit

/// The table plus the effects it produced, for terse tests.
struct TableDriver {
    var table: LockTable
    var clock = ManualClock()
    var effects: [LockEffect] = []
    var nextWaiter: UInt64 = 0

    init(limits: LockLimits = LockLimits(), forgetAfter: Duration = .seconds(3600)) {
        table = LockTable(limits: limits, forgetAfter: forgetAfter)
    }

    /// Acquire; returns the result and the waiter id used.
    @discardableResult
    mutating func acquire(_ name: String, _ owner: String, ttl: Duration = .seconds(10), wait: Duration = .zero,
                          waitCap: Duration? = nil, attempt: UInt64 = 0) throws(LockError) -> (AcquireResult, UInt64) {
        nextWaiter += 1
        let result = try table.acquire(name: name, owner: owner, ttl: ttl, wait: wait, waitCap: waitCap, attempt: attempt,
                                       waiter: nextWaiter, now: clock.now, effects: &effects)
        return (result, nextWaiter)
    }

    mutating func grant(_ name: String, _ owner: String, ttl: Duration = .seconds(10)) throws -> LockLease {
        let (result, _) = try acquire(name, owner, ttl: ttl)
        guard case .granted(let lease) = result else { throw TestFailure("\(name) was not granted to \(owner): \(result)") }
        return lease
    }

    mutating func renew(_ name: String, _ owner: String, token: UInt64, ttl: Duration? = nil) throws(LockError) -> LockLease {
        try table.renew(name: name, owner: owner, token: token, ttl: ttl, now: clock.now, effects: &effects)
    }

    mutating func release(_ name: String, _ owner: String, token: UInt64) throws(LockError) {
        try table.release(name: name, owner: owner, token: token, now: clock.now, effects: &effects)
    }

    mutating func cancel(_ name: String, _ owner: String, attempt: UInt64) throws(LockError) -> CancelOutcome {
        try table.cancel(name: name, owner: owner, attempt: attempt, now: clock.now, effects: &effects)
    }

    @discardableResult
    mutating func withdraw(_ waiter: UInt64) -> String? {
        table.withdraw(waiter: waiter, now: clock.now, effects: &effects)
    }

    @discardableResult
    mutating func revoke(_ name: String, token: UInt64) -> Bool {
        table.revoke(name: name, token: token, reason: "the client is gone", now: clock.now, effects: &effects)
    }

    mutating func advance(_ duration: Duration) {
        clock.advance(duration)
        table.tick(now: clock.now, effects: &effects)
    }

    /// The effects so far, cleared.
    mutating func take() -> [LockEffect] {
        defer { effects.removeAll() }
        return effects
    }

    /// Waiter grants among `effects`: waiter id → (owner, token).
    static func grants(_ effects: [LockEffect]) -> [(waiter: UInt64, owner: String, token: UInt64)] {
        effects.compactMap {
            if case .granted(let waiter, let lease) = $0 { return (waiter, lease.owner, lease.token) }
            return nil
        }
    }

    static func timeouts(_ effects: [LockEffect]) -> [UInt64] {
        effects.compactMap {
            if case .waitExpired(let waiter, _, _) = $0 { return waiter }
            return nil
        }
    }

    static func events(_ effects: [LockEffect]) -> [LockEvent] {
        effects.compactMap {
            if case .event(let event) = $0 { return event }
            return nil
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `#expect(throws:)` with the kind of a `LockError` and a piece of its message.
func expectRefusal(_ kind: LockError.Kind, containing fragment: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                   _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected \(kind), but it succeeded", sourceLocation: sourceLocation)
    } catch {
        guard let error = error as? LockError else {
            Issue.record("expected a LockError, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(error.kind == kind, "\(error.message)", sourceLocation: sourceLocation)
        #expect(fragment.isEmpty || error.message.contains(fragment), "'\(error.message)' lacks '\(fragment)'", sourceLocation: sourceLocation)
    }
}

extension AcquireResult {
    var grantedToken: UInt64? {
        if case .granted(let lease) = self { return lease.token }
        return nil
    }
}
