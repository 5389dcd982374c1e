// make bench-resp-loop (not part of Ringstore): a RESP PING server on SwiftNIO, answering
// on the event loop ("direct") or after a hop to another thread and back
// ("hop"), as a NIO front door would have to reach the node's reactor thread.
import Foundation
import NIOCore
import NIOPosix
import Synchronization

let mode = CommandLine.arguments[1]
let port = Int(CommandLine.arguments[2])!

/// Stands in for the node's reactor: one thread taking work from a queue.
final class Reactor: @unchecked Sendable {
    private let condition = NSCondition()
    private var work: [() -> Void] = []
    init() {
        Thread.detachNewThread { [self] in
            while true {
                condition.lock()
                while work.isEmpty { condition.wait() }
                let batch = work
                work.removeAll()
                condition.unlock()
                for item in batch { item() }
            }
        }
    }
    func post(_ item: @escaping () -> Void) {
        condition.lock()
        work.append(item)
        condition.signal()
        condition.unlock()
    }
}
let reactor = Reactor()

final class PingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var pending: [UInt8] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        pending += buffer.readBytes(length: buffer.readableBytes) ?? []
        // Count complete "*1\r\n$4\r\nPING\r\n" commands (14 bytes each).
        let commands = pending.count / 14
        pending.removeFirst(commands * 14)
        guard commands > 0 else { return }
        var reply = context.channel.allocator.buffer(capacity: commands * 7)
        for _ in 0..<commands { reply.writeString("+PONG\r\n") }
        if mode == "direct" {
            context.writeAndFlush(wrapOutboundOut(reply), promise: nil)
        } else {
            let channel = context.channel
            let out = reply
            reactor.post { channel.writeAndFlush(out, promise: nil) }
        }
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(ChannelOptions.backlog, value: 256)
    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(PingHandler()) } }
let channel = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
print("listening \(mode) \(port)")
try channel.closeFuture.wait()
