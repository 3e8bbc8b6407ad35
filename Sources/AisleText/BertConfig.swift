import AisleCore
import Foundation

/// The shape of a BERT encoder (`config.json`).
public struct BertConfig: Sendable, Equatable {
    public var hidden = 384
    public var heads = 12
    public var layers = 6
    public var intermediate = 1536
    public var vocabulary = 30522
    public var maxPositions = 512
    public var typeVocabulary = 2
    public var layerNormEpsilon: Float = 1e-12

    public var headSize: Int { hidden / heads }

    /// Reads the fields this implementation needs; refuses an architecture it does not run.
    public static func load(_ url: URL) throws -> BertConfig {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TensorFileError(path: url.path, reason: "cannot read the model configuration")
        }
        return try parse(Array(data), path: url.path)
    }

    /// Parses a Hugging Face `config.json`.
    public static func parse(_ bytes: [UInt8], path: String) throws -> BertConfig {
        let url = URL(fileURLWithPath: path)
        guard case .object(let o) = try JSONParser.parse(bytes) else {
            throw TensorFileError(path: path, reason: "the model configuration is not a JSON object")
        }
        func int(_ key: String) throws -> Int {
            guard case .int(let v)? = o[key], v > 0 else { throw TensorFileError(path: url.path, reason: "\(key) missing or not a positive integer") }
            return Int(v)
        }
        guard case .string("gelu")? = o["hidden_act"] else { throw TensorFileError(path: url.path, reason: "only hidden_act \"gelu\" is supported") }
        var c = BertConfig()
        c.hidden = try int("hidden_size")
        c.heads = try int("num_attention_heads")
        c.layers = try int("num_hidden_layers")
        c.intermediate = try int("intermediate_size")
        c.vocabulary = try int("vocab_size")
        c.maxPositions = try int("max_position_embeddings")
        c.typeVocabulary = try int("type_vocab_size")
        if case .double(let eps)? = o["layer_norm_eps"] { c.layerNormEpsilon = Float(eps) }
        guard c.hidden % c.heads == 0 else { throw TensorFileError(path: url.path, reason: "hidden_size is not a multiple of num_attention_heads") }
        return c
    }
}

extension BertConfig {
    /// The configuration as `config.json` keys, for the int8 file's metadata.
    var json: String {
        """
        {"hidden_act":"gelu","hidden_size":\(hidden),"num_attention_heads":\(heads),"num_hidden_layers":\(layers),\
        "intermediate_size":\(intermediate),"vocab_size":\(vocabulary),"max_position_embeddings":\(maxPositions),\
        "type_vocab_size":\(typeVocabulary),"layer_norm_eps":\(Double(layerNormEpsilon))}
        """
    }
}
