import Foundation

/// Where the encoder's files are: `tools/fetch-model` unpacks the pinned wheel into
/// `$AISLE_MODEL_CACHE/all-MiniLM-L6-v2` (default `~/.cache/aisle/models`).
public struct ModelFiles: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// The default cache location.
    public static var `default`: ModelFiles {
        let env = ProcessInfo.processInfo.environment
        let cache = env["AISLE_MODEL_CACHE"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/aisle/models")
        return ModelFiles(directory: cache.appendingPathComponent("all-MiniLM-L6-v2"))
    }

    public var vocabulary: URL { directory.appendingPathComponent("vocab.txt") }
    public var weights: URL { directory.appendingPathComponent("model.safetensors") }
    public var config: URL { directory.appendingPathComponent("config.json") }
    /// Where `aislectl model quantize` writes the int8 model by default.
    public var int8Weights: URL { directory.appendingPathComponent("minilm-int8.safetensors") }
}
