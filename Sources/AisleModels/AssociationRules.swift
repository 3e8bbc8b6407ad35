import Foundation

/// An association rule `antecedents → consequents` with mlxtend's `association_rules` metrics.
public struct AssociationRule: Sendable, Equatable {
    public var antecedents: [Int]
    public var consequents: [Int]
    public var antecedentSupport: Double
    public var consequentSupport: Double
    public var support: Double
    public var confidence: Double
    public var lift: Double
    public var leverage: Double
    /// `(1 - consequent support) / (1 - confidence)`; infinite when confidence is 1.
    public var conviction: Double
    public var count: Int
    public var antecedentCount: Int
    public var consequentCount: Int

    /// Every rule from the frequent itemsets whose confidence is at least `minConfidence`: each
    /// itemset of two or more items split every way into a non-empty antecedent and consequent.
    /// Sorted by descending lift, then confidence, then the item lists, so output is stable.
    public static func mine(_ itemsets: [FPGrowth.Itemset], baskets: Int, minConfidence: Double) -> [AssociationRule] {
        let counts = Dictionary(itemsets.map { ($0.items, $0.count) }, uniquingKeysWith: max)
        let n = Double(baskets)
        var rules: [AssociationRule] = []
        for set in itemsets where set.items.count >= 2 {
            let k = set.items.count
            for mask in 1..<(1 << k) - 1 {
                let lhs = (0..<k).filter { mask & (1 << $0) != 0 }.map { set.items[$0] }
                let rhs = (0..<k).filter { mask & (1 << $0) == 0 }.map { set.items[$0] }
                // Every subset of a frequent itemset is frequent, so both counts are known.
                guard let a = counts[lhs], let c = counts[rhs] else { continue }
                let support = Double(set.count) / n, sa = Double(a) / n, sc = Double(c) / n
                let confidence = support / sa
                guard confidence >= minConfidence else { continue }
                rules.append(AssociationRule(
                    antecedents: lhs, consequents: rhs, antecedentSupport: sa, consequentSupport: sc, support: support,
                    confidence: confidence, lift: confidence / sc, leverage: support - sa * sc,
                    conviction: confidence >= 1 ? .infinity : (1 - sc) / (1 - confidence),
                    count: set.count, antecedentCount: a, consequentCount: c))
            }
        }
        return rules.sorted {
            ($0.lift, $0.confidence) != ($1.lift, $1.confidence)
                ? ($0.lift, $0.confidence) > ($1.lift, $1.confidence)
                : ($0.antecedents + [-1] + $0.consequents).lexicographicallyPrecedes($1.antecedents + [-1] + $1.consequents)
        }
    }
}
