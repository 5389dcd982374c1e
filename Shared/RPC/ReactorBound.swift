/// A reference to an object that lives on a reactor thread, which other
/// threads (async tasks awaiting RPC replies) may hold but only use by posting
/// work to that thread.
///
/// This is how a reactor-owned service starts an async call and handles its
/// result: `Task { let reply = await ...; bound.post { $0.handle(reply) } }`.
public struct ReactorBound<Object: AnyObject>: @unchecked Sendable {
    // Only dereferenced inside work posted to the owning reactor's thread.
    private let object: Object
    private let handle: ReactorHandle

    init(object: Object, handle: ReactorHandle) {
        self.object = object
        self.handle = handle
    }

    /// Runs `work` with the object on its reactor thread.
    public func post(_ work: @escaping @Sendable (Object) -> Void) {
        let object = self.object
        let transfer = UncheckedTransfer(object)
        handle.post { _ in work(transfer.value) }
    }
}

extension Reactor {
    /// Wraps an object owned by this reactor's thread for use from other threads.
    public func bind<Object: AnyObject>(_ object: Object) -> ReactorBound<Object> {
        ReactorBound(object: object, handle: handle)
    }
}
