import AisleCore
import AisleStore
import Foundation

/// The importers for each kind of input file.
public enum Sources {
    /// `aislectl import events FILE`: interchange events, one JSON object per line.
    public static func importEvents(path: String, into importer: Importer) throws {
        try importer.importLines(path: path, label: "events") {
            { line, _ in
                jsonObject(line).map { $0.flatMap { v in Result { () throws(FieldError) in .event(try Interchange.event(from: v), nil) } } }
            }
        }
    }

    /// `aislectl import catalog FILE`: `{"item","title","category"?,"price"?,"active"?}` per line.
    public static func importCatalog(path: String, into importer: Importer) throws {
        try importer.importLines(path: path, label: "catalog") {
            { line, _ in
                jsonObject(line).map { $0.flatMap { v in Result { () throws(FieldError) in .catalog(try Interchange.catalogEntry(from: v)) } } }
            }
        }
    }

    /// Parses one JSON Lines line; nil for a blank line.
    static func jsonObject(_ line: UnsafeBufferPointer<UInt8>) -> Result<JSONValue, FieldError>? {
        if line.allSatisfy({ $0 == 32 || $0 == 9 }) { return nil }
        if line.contains(where: { $0 >= 0x80 }), String(validating: line, as: UTF8.self) == nil {
            return .failure(FieldError(field: nil, "invalid UTF-8"))
        }
        do throws(JSONSyntaxError) {
            return .success(try JSONParser.parse(line))
        } catch {
            return .failure(FieldError(field: nil, error.description))
        }
    }
}
