/// Runs async work (an RPC to a peer) from a reactor thread and hands its
/// result back to a callback on that same thread.
///
/// The callback may capture reactor-owned, non-Sendable state: it is stored
/// here, never crosses threads, and runs at a later turn of the loop.
public final class ReactorTasks {
    private var callbacks: [Int: (Any) -> Void] = [:]
    private var nextID = 0
    private var bound: ReactorBound<ReactorTasks>!

    public init(reactor: Reactor) {
        bound = reactor.bind(self)
    }

    /// Starts `work` as a task; `then` runs on the reactor thread with its result.
    public func run<Result: Sendable>(_ work: @escaping @Sendable () async -> Result, then: @escaping (Result) -> Void) {
        nextID += 1
        let id = nextID
        callbacks[id] = { value in
            // Only `run` stores values under this id, and they are `Result`s.
            if let value = value as? Result { then(value) }
        }
        let bound = bound!
        Task {
            let value = await work()
            bound.post { tasks in tasks.finish(id, value) }
        }
    }

    private func finish(_ id: Int, _ value: Any) {
        callbacks.removeValue(forKey: id)?(value)
    }
}
