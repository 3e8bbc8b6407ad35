import AisleCore
import Foundation
import GRDB

/// The embedding cache in the store's SQLite database (table `embeddings`).
public struct StoredEmbeddings: EmbeddingCache {
    let database: DatabasePool
    let reads: DatabasePool

    /// `reads`: the pool lookups go through — the agent's request pool (``Store/requestReader()``)
    /// for the cache `/v1/embed` reads; the store's own by default.
    public init(store: Store, reads: DatabasePool? = nil) { (database, self.reads) = (store.database, reads ?? store.database) }

    public func vectors(model: String, keys: [Data]) throws -> [Data: [Float]] {
        guard !keys.isEmpty else { return [:] }
        return try reads.read { db in
            var found: [Data: [Float]] = [:]
            let select = try db.cachedStatement(sql: "SELECT vector FROM embeddings WHERE model = ? AND text_hash = ?")
            for key in keys {
                if let blob = try Data.fetchOne(select, arguments: [model, key]) {
                    found[key] = blob.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                }
            }
            return found
        }
    }

    public func store(model: String, vectors: [(key: Data, vector: [Float])]) throws {
        guard !vectors.isEmpty else { return }
        try Scheduling.atNormalPriority { try database.write { db in
            let insert = try db.cachedStatement(sql: """
                INSERT INTO embeddings(model, text_hash, dimensions, vector) VALUES (?, ?, ?, ?)
                ON CONFLICT(model, text_hash) DO NOTHING
                """)
            for (key, vector) in vectors {
                try insert.execute(arguments: [model, key, vector.count, vector.withUnsafeBytes { Data($0) }])
            }
        } }
    }

    /// Deletes what other encoders cached (an encoder replaced or re-quantised leaves its vectors
    /// behind otherwise); returns how many rows went. The agent calls it when it loads its
    /// encoder.
    @discardableResult
    public func removeAll(except model: String) throws -> Int {
        try Scheduling.atNormalPriority { try database.write { db in
            try db.execute(sql: "DELETE FROM embeddings WHERE model <> ?", arguments: [model])
            return db.changesCount
        } }
    }
}
