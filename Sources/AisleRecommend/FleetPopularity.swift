import AisleStore
import GRDB

/// The fleet's popularity from the hub's global priors (issue 8): of all stores' receipts, how
/// many held each item (by SKU), noised and thresholded at the stores. What a new store
/// recommends before its own customers have shown it (``Signals/fleetWeight``).
public struct FleetPopularity: Sendable, Decodable {
    /// The registry kind global priors are kept under (`StorePriors.kind` in the sync module).
    public static let kind = "priors"
    public var receipts: Double
    public var items: [String: Double]

    public init(receipts: Double, items: [String: Double]) { (self.receipts, self.items) = (receipts, items) }

    /// Item id → share of the fleet's receipts holding it, for the items of this store's
    /// catalog (`skus`: SKU → item id).
    func shares(_ skus: [String: Int]) -> [Int: Double] {
        guard receipts > 0 else { return [:] }
        var out: [Int: Double] = [:]
        for (sku, n) in items where n > 0 { if let id = skus[sku] { out[id] = min(1, n / receipts) } }
        return out
    }

    /// The active global priors in the store's registry; nil when it has taken none.
    public static func active(_ db: Database) throws -> FleetPopularity? { try ModelRegistry.activeModel(db, kind: kind, as: Self.self)?.model }
}
