import AisleCore
import AisleStore
import Foundation

/// The UCI Online Retail pair as shipped in `shared/data/online_retail`:
/// `lines.csv.gz` (InvoiceNo, InvoiceDate, StockCode, Description, Quantity, UnitPrice) and
/// `invoices.csv.gz` (InvoiceNo, CustomerID, Country).
///
/// Mapping: each line is a `purchase` on receipt InvoiceNo; a cancellation (InvoiceNo starting
/// with `C`) or a negative quantity is a `return`, linked to the customer's latest earlier
/// purchase of the item. Empty CustomerID is an anonymous basket. The country is the store code
/// (Online Retail has no physical stores; the fleet simulation splits stores by country).
/// Postage, fees and adjustments (see ``serviceCodes``) are items that are not sellable.
public enum OnlineRetail {
    /// StockCodes that are not merchandise.
    public static let serviceCodes: Set<String> = [
        "POST", "D", "M", "DOT", "C2", "CRUK", "PADS", "AMAZONFEE", "S", "B", "BANK CHARGES",
    ]

    static func isService(_ sku: String) -> Bool { serviceCodes.contains(sku) || sku.hasPrefix("GIFT_") }

    public static func importPair(lines: String, invoices: String, into importer: Importer) throws {
        let invoiceFile = URL(fileURLWithPath: invoices).lastPathComponent
        var headers: [String: (customer: String?, country: String?)] = [:]
        let inv = try LineReader(path: invoices)
        var fields: [String] = []
        var headerSeen = false
        while let error = try inv.next({ line in parseInvoice(line, fields: &fields, headerSeen: &headerSeen, into: &headers) }) {
            if let error { try importer.reject(line: inv.lineNumber, file: invoiceFile, error) }
        }

        let invoiceHeaders = headers
        try importer.importLines(path: lines, label: "online-retail") {
            var fields: [String] = []
            var headerDone = false
            return { line, _ in
                do throws(FieldError) {
                    try CSV.fields(line, into: &fields)
                    if !headerDone {
                        headerDone = true
                        if isHeader(fields) { return nil }  // a file without one starts with data
                    }
                    return .success(try record(fields, headers: invoiceHeaders))
                } catch {
                    return .failure(error)
                }
            }
        }
    }

    /// Parses one invoices line into `headers`; returns the reason when it is refused.
    private static func parseInvoice(
        _ line: UnsafeBufferPointer<UInt8>, fields: inout [String], headerSeen: inout Bool,
        into headers: inout [String: (customer: String?, country: String?)]
    ) -> FieldError? {
        do throws(FieldError) {
            try CSV.fields(line, into: &fields)
        } catch { return error }
        if !headerSeen {
            headerSeen = true
            if isHeader(fields) { return nil }  // a file without one starts with data
        }
        guard fields.count == 3 else { return FieldError(field: nil, "expected 3 fields, got \(fields.count)") }
        let no = Normalize.text(fields[0])
        guard !no.isEmpty else { return FieldError(field: "InvoiceNo", "empty") }
        let customer = Normalize.text(fields[1])
        let country = Normalize.text(fields[2])
        do throws(FieldError) {
            try Interchange.checkIdentifier(no, field: "InvoiceNo")
            try Interchange.checkIdentifier(customer, field: "CustomerID")
            try Interchange.checkIdentifier(country, field: "Country")
        } catch { return error }
        let header = (customer: customer.isEmpty ? nil : customer, country: country.isEmpty ? nil : country)
        if let seen = headers[no] {
            // A repeat that agrees is harmless; one that disagrees would move the basket silently.
            return seen == header ? nil : FieldError(field: "InvoiceNo", "listed again with another customer or country; the first is kept")
        }
        headers[no] = header
        return nil
    }

    /// Whether `fields` are a header line (its first field `InvoiceNo`, after a byte-order mark
    /// as spreadsheet exports write one).
    static func isHeader(_ fields: [String]) -> Bool {
        fields.first.map { $0.hasPrefix("\u{FEFF}") ? String($0.dropFirst()) : $0 } == "InvoiceNo"
    }

    static func record(_ f: [String], headers: [String: (customer: String?, country: String?)]) throws(FieldError) -> ImportRecord {
        guard f.count == 6 else { throw FieldError(field: nil, "expected 6 fields, got \(f.count)") }
        let invoice = Normalize.text(f[0])
        guard !invoice.isEmpty else { throw FieldError(field: "InvoiceNo", "empty") }
        guard let header = headers[invoice] else { throw FieldError(field: "InvoiceNo", "not in the invoices file") }
        let ts: Int64
        do { ts = try Timestamp.parse(f[1]) } catch let e as FieldError { throw FieldError(field: "InvoiceDate", e.reason) } catch {
            throw FieldError(field: "InvoiceDate", "\(error)")
        }
        try Interchange.checkNotAhead(ts, field: "InvoiceDate")
        let sku = Normalize.sku(f[2])
        guard !sku.isEmpty else { throw FieldError(field: "StockCode", "empty") }
        try Interchange.checkIdentifier(sku, field: "StockCode")
        let title = Normalize.text(f[3])
        try Interchange.checkName(title, field: "Description")
        guard let qty = Int64(f[4]) else { throw FieldError(field: "Quantity", "not an integer") }
        try Interchange.checkQuantity(qty, field: "Quantity")
        guard let price = Double(f[5]), price.isFinite else { throw FieldError(field: "UnitPrice", "not a number") }
        try Interchange.checkPrice(price, field: "UnitPrice")
        let isReturn = qty < 0 || invoice.hasPrefix("C")
        let event = IncomingEvent(
            ts: ts, type: isReturn ? .return : .purchase, customer: header.customer, receipt: invoice,
            item: sku, qty: abs(qty), price: price, source: "web", store: header.country)
        return .event(event, ItemHint(title: title, sellable: !isService(sku)))
    }
}
