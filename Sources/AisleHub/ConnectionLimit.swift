import HummingbirdCore
import Metrics
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Caps the hub's open connections: one past `limit` is closed as soon as it opens (the store
/// sees `unavailable` and tries again at its next sync), so a flood of connections cannot take
/// every file descriptor the hub has. Counted in `aisle_hub_connections_refused_total`.
final class ConnectionLimit: Sendable {
    let limit: Int
    private let open = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    /// A handler for one new connection's pipeline.
    func handler() -> any RemovableChannelHandler { Handler(limit: self) }

    private final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPRequestPart
        let limit: ConnectionLimit
        private var counted = false

        init(limit: ConnectionLimit) { self.limit = limit }

        func handlerAdded(context: ChannelHandlerContext) {
            counted = true
            guard limit.open.add(1, ordering: .relaxed).newValue > limit.limit else { return }
            Counter(label: "aisle_hub_connections_refused_total").increment()
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
