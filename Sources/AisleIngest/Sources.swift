import AisleCore
import AisleStore
import Foundation

/// The importers for each kind of input file.
public enum Sources {
    /// `aislectl import events FILE`: interchange events, one JSON object per line.
    public static func importEvents(path: String, into importer: Importer) throws {
        try importer.importLines(path: path, label: "events") {
            { line, number in
                jsonObject(line, number).map { $0.flatMap { v in Result { () throws(FieldError) in .event(try Interchange.event(from: v), nil) } } }
            }
        }
    }

    /// `aislectl import catalog FILE`: `{"item","title","category"?,"price"?,"active"?,"sellable"?,"in_stock"?}` per line.
    public static func importCatalog(path: String, into importer: Importer) throws {
        try importer.importLines(path: path, label: "catalog") {
            { line, number in
                jsonObject(line, number).map { $0.flatMap { v in Result { () throws(FieldError) in .catalog(try Interchange.catalogEntry(from: v)) } } }
            }
        }
    }

    /// Values one line may hold: an event or catalog object has a dozen fields, and without a
    /// cap a 64 MiB line of `[0,0,…]` would take gigabytes before it is refused.
    static let maxValuesPerLine = 256

    /// Parses line `number` of a JSON Lines file (a byte-order mark before the first is
    /// skipped); nil for a blank line.
    static func jsonObject(_ whole: UnsafeBufferPointer<UInt8>, _ number: Int) -> Result<JSONValue, FieldError>? {
        let line = number == 1 && whole.starts(with: [0xEF, 0xBB, 0xBF]) ? UnsafeBufferPointer(rebasing: whole.dropFirst(3)) : whole
        if line.allSatisfy({ $0 == 32 || $0 == 9 }) { return nil }
        if line.contains(where: { $0 >= 0x80 }), String(validating: line, as: UTF8.self) == nil {
            return .failure(FieldError(field: nil, "invalid UTF-8"))
        }
        do throws(JSONSyntaxError) {
            return .success(try JSONParser.parse(line, maxValues: maxValuesPerLine))
        } catch {
            return .failure(FieldError(field: nil, error.description))
        }
    }
}
