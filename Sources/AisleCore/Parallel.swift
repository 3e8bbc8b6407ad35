import Foundation
import Synchronization

/// Work spread over the machine's cores.
public enum Parallel {
    /// `body`'s entry for each index of `0..<count` that has one, computed on up to eight cores
    /// (each takes every n-th index, with its own `scratch` state) and merged.
    public static func dictionary<Key: Hashable & Sendable, Value: Sendable, Scratch>(
        count: Int, scratch: @escaping @Sendable () -> Scratch, _ body: @escaping @Sendable (Int, inout Scratch) -> (Key, Value)?
    ) -> [Key: Value] {
        let parts = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))
        let results = Results<[Key: Value]>(parts)
        let work: @Sendable (Int) -> Void = { part in
            var state = scratch(), mine: [Key: Value] = [:]
            for i in stride(from: part, to: count, by: parts) {
                if let (key, value) = body(i, &state) { mine[key] = value }
            }
            results.set(part, mine)
        }
        // Threads started here inherit this thread's priority, so background work spread over
        // the cores stays background (``Blocking/background(_:)``).
        let done = DispatchGroup()
        for part in 1..<parts {
            done.enter()
            Thread { work(part); done.leave() }.start()
        }
        work(0)
        done.wait()
        return results.all.reduce(into: [:]) { $0.merge($1) { a, _ in a } }
    }

    /// One slot per part, filled from the parts' threads.
    private final class Results<T: Sendable>: Sendable {
        private let slots: Mutex<[T?]>
        init(_ n: Int) { slots = Mutex([T?](repeating: nil, count: n)) }
        func set(_ i: Int, _ value: T) { slots.withLock { $0[i] = value } }
        var all: [T] { slots.withLock { $0.compactMap { $0 } } }
    }

    /// As above, without scratch state.
    public static func dictionary<Key: Hashable & Sendable, Value: Sendable>(count: Int, _ body: @escaping @Sendable (Int) -> (Key, Value)?) -> [Key: Value] {
        dictionary(count: count, scratch: {}) { i, _ in body(i) }
    }
}

/// The `k` best elements offered, best first by `before` (a strict order; of equals, the one
/// offered first stays ahead).
public struct TopK<Element> {
    public private(set) var elements: [Element] = []
    private let k: Int
    private let before: (Element, Element) -> Bool

    public init(_ k: Int, by before: @escaping (Element, Element) -> Bool) { (self.k, self.before) = (k, before) }

    public mutating func offer(_ e: Element) {
        guard k > 0, elements.count < k || before(e, elements[elements.count - 1]) else { return }
        elements.insert(e, at: elements.firstIndex { before(e, $0) } ?? elements.count)
        if elements.count > k { elements.removeLast() }
    }
}
