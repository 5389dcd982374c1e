import Logging
import ZeroMQ

/// The read loop of every reactor socket (the RPC server's ROUTER, an event
/// listener's SUB): take what is waiting, without blocking, at most `limit`
/// messages per wake-up so one busy socket cannot starve the others. A
/// receive error ends the round and is logged as `failure`, except when the
/// context is terminating (the process is stopping).
func drainWaiting<Message>(limit: Int = 1024, logger: Logger, failure: Logger.Message,
                           receive: () throws(ZMQError) -> Message?, handle: (Message) -> Void) {
    for _ in 0..<limit {
        let message: Message?
        do {
            message = try receive()
        } catch {
            if error != .terminated { logger.error(failure, metadata: ["zmq.error": "\(error)"]) }
            return
        }
        guard let message else { return }
        handle(message)
    }
}
