import HummingbirdCore
import Metrics
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Caps a server's open connections: one past `limit` is closed as soon as it opens (a store
/// sees the hub `unavailable` and tries again at its next sync; a kiosk its connection closed),
/// so a flood of connections, or a client that leaks them, cannot take every file descriptor
/// the process has. Counted in the counter `refused` names.
public final class ConnectionLimit: Sendable {
    let limit: Int
    let refused: String
    private let open = Atomic<Int>(0)

    public init(limit: Int, refused: String) { (self.limit, self.refused) = (limit, refused) }

    /// A handler for one new connection's pipeline.
    public func handler() -> any RemovableChannelHandler { Handler(limit: self) }

    private final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPRequestPart
        let limit: ConnectionLimit
        private var counted = false

        init(limit: ConnectionLimit) { self.limit = limit }

        func handlerAdded(context: ChannelHandlerContext) {
            counted = true
            guard limit.open.add(1, ordering: .relaxed).newValue > limit.limit else { return }
            Counter(label: limit.refused).increment()
            // Closed once the pipeline is set up, not in the middle of it.
            let channel = context.channel
            channel.eventLoop.execute { channel.close(promise: nil) }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            guard counted else { return }
            counted = false
            limit.open.subtract(1, ordering: .relaxed)
        }
    }
}
