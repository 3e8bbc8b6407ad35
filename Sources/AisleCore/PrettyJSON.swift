import Foundation

/// Prints a value as pretty JSON with snake_case keys and sorted keys: the admin CLIs' `--json`.
public func printJSON<T: Encodable>(_ value: T) throws {
    let e = JSONEncoder()
    e.keyEncodingStrategy = .convertToSnakeCase
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try e.encode(value), as: UTF8.self))
}
