/// What happened: the kinds of event that tills and kiosks report.
public enum EventType: String, CaseIterable, Sendable, Codable {
    case view, cart, fav, purchase
    case `return`
    case review, search, question

    /// Whether an event of this type must name an item.
    ///
    /// Searches and questions are free text; a receipt-level purchase may carry only an amount.
    public var requiresItem: Bool {
        switch self {
        case .search, .question, .purchase: false
        default: true
        }
    }

    /// Whether an event of this type must carry text.
    public var requiresText: Bool { self == .search || self == .question }
}
