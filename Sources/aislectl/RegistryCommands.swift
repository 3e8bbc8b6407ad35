import AisleCore
import AisleStore
import AisleTraining
import ArgumentParser
import Foundation
import GRDB

extension ModelCommand {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The trained models in the store's registry, newest first; * marks the active version.",
            discussion: "Example: aislectl model list churn")
        @Argument(help: "Only this kind (churn, intent …).") var kind: String?
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let records = try storeOptions.openForReading().database.read { try ModelRegistry.list($0, kind: kind) }
                if output.json { return try printJSON(records) }
                if records.isEmpty { return print("no models yet; `aislectl train all` trains them") }
                for r in records {
                    let headline: String
                    if case .object(let m) = r.metrics, case .string(let method)? = m["method"] { headline = method } else { headline = "" }
                    print("\(r.active ? "*" : " ") \(r.kind) v\(r.version)  \(r.createdAt)  by \(r.actor)  data until \(r.dataUntil ?? "?")  \(headline)  \(r.bytes.formatted()) bytes")
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One model version: data window, parameters, metrics, features (default: the active version).",
            discussion: "Example: aislectl model show churn --version 3")
        @Argument var kind: String
        @Option var version: Int?
        @OptionGroup var storeOptions: StoreOptions

        func run() throws {
            try reporting {
                let record = try storeOptions.openForReading().database.read { db -> ModelRecord? in
                    guard let v = try version ?? ModelRegistry.activeVersions(db)[kind] else { return nil }
                    return try ModelRegistry.record(db, kind: kind, version: v)
                }
                guard let record else { throw CLIError("no \(kind) model\(version.map { " v\($0)" } ?? " is active")", code: 4) }
                try printJSON(record)
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a model version's payload to a file (to publish it from the hub; sentiment and assist models also to import into another store).",
            discussion: "Example: aislectl model export intent --out intent.json && aisle-hub models publish intent intent.json")
        @Argument var kind: String
        @Option(help: "The version (default: the active one).") var version: Int?
        @Option(help: ArgumentHelp("Where to write it.", valueName: "FILE")) var out: String
        @OptionGroup var storeOptions: StoreOptions

        func run() throws {
            try reporting {
                let payload = try storeOptions.openForReading().database.read { db -> Data? in
                    guard let v = try version ?? ModelRegistry.activeVersions(db)[kind] else { return nil }
                    return try Data.fetchOne(db, sql: "SELECT payload FROM models WHERE kind = ? AND version = ?", arguments: [kind, v])
                }
                guard let payload else { throw CLIError("no \(kind) model\(version.map { " v\($0)" } ?? " is active")", code: 4) }
                try DurableFile.write(payload, to: out)
                print("wrote \(kind) (\(payload.count.formatted()) bytes) to \(out)")
            }
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the previous version of a model the active one; the agent switches within a minute.",
            discussion: "Example: aislectl model rollback churn")
        @Argument var kind: String
        @Option(help: "Activate this version instead of the previous one.") var to: Int?
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let store = try Store.open(at: try storeOptions.directory())
                let record = try store.database.write { db -> ModelRecord in
                    let record: ModelRecord
                    if let to {
                        guard try ModelRegistry.record(db, kind: kind, version: to) != nil else {
                            throw CLIError("no \(kind) v\(to); `aislectl model list \(kind)` shows what there is", code: 4)
                        }
                        record = try ModelRegistry.activate(db, kind: kind, version: to)
                    } else {
                        record = try ModelRegistry.rollback(db, kind: kind)
                    }
                    do { try ModelTrainer.loadActive(db, kind: kind) } catch {
                        throw CLIError("\(kind) v\(record.version) cannot be used, so the active version stays: \(error)", code: 65)
                    }
                    try ModelRegistry.markChosenByHand(db, kind: kind, version: record.version)  // the agent's retraining leaves it
                    try Store.audit(db, "model rollback \(kind)", detail: "v\(record.version) active")
                    return record
                }
                if output.json { return try printJSON(record) }
                print("\(kind) v\(record.version) is active (trained \(record.createdAt), data until \(record.dataUntil ?? "?"))")
            }
        }
    }
}
