"""Builds an ONNX graph of all-MiniLM-L6-v2 (BERT forward pass, mean pooling, L2 normalisation)
straight from the wheel's model.safetensors, then ONNX Runtime's dynamic int8 quantisation of it.

Benchmark only (`make bench`): the comparison point for our own int8 encoder. No torch needed:
the graph is written node by node with onnx.helper, in the form the HF exporter produces, so
ONNX Runtime's BERT fusions (attention, GELU, LayerNorm) apply.

usage: build_onnx.py MODEL_DIR OUT_DIR   ->  OUT_DIR/model-fp32.onnx, OUT_DIR/model-int8.onnx
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            continue
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[base + a : base + b], dtype="<f4").reshape(e["shape"])
    return out


def build(model_dir, out_dir):
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    w = read_safetensors(Path(model_dir) / "model.safetensors")
    w = {k.removeprefix("bert."): v for k, v in w.items()}
    hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    head = hidden // heads
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def linear(x, prefix, out):
        y = node("MatMul", [x, const(prefix + ".weight_t", w[prefix + ".weight"].T)], out + "_mm")
        return node("Add", [y, const(prefix + ".bias", w[prefix + ".bias"])], out)

    def layernorm(x, prefix, out):
        return node("LayerNormalization", [x, const(prefix + ".weight", w[prefix + ".weight"]), const(prefix + ".bias", w[prefix + ".bias"])], out, axis=-1, epsilon=eps)

    i64 = lambda v: const(f"i64_{len(inits)}", np.array(v, dtype=np.int64))
    f32 = lambda v: const(f"f32_{len(inits)}", np.array(v, dtype=np.float32))

    # Embeddings: word + position[0:S] + token type 0, then LayerNorm.
    shape = node("Shape", ["input_ids"], "ids_shape")
    seq = node("Gather", [shape, i64([1])], "seq_len", axis=0)
    positions = node("Slice", [const("embeddings.position_embeddings.weight", w["embeddings.position_embeddings.weight"]), i64([0]), seq, i64([0])], "pos_emb")
    words = node("Gather", [const("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]), "input_ids"], "word_emb", axis=0)
    e = node("Add", [words, positions], "emb_wp")
    e = node("Add", [e, const("embeddings.token_type0", w["embeddings.token_type_embeddings.weight"][0])], "emb_wpt")
    x = layernorm(e, "embeddings.LayerNorm", "emb_out")

    # Additive attention mask [B,1,1,S]: 0 where attended, -10000 where padded.
    m = node("Unsqueeze", ["attention_mask", i64([1])], "mask_3d")
    m = node("Unsqueeze", [m, i64([2])], "mask_4d")
    m = node("Cast", [m], "mask_f", to=TensorProto.FLOAT)
    m = node("Sub", [f32(1.0), m], "mask_inv")
    bias = node("Mul", [m, f32(-10000.0)], "mask_bias")

    split = i64([0, 0, heads, head])
    merge = i64([0, 0, hidden])
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        def heads_of(t, name, perm):
            r = node("Reshape", [t, split], name + "_r")
            return node("Transpose", [r], name + "_t", perm=perm)
        q = heads_of(linear(x, f"{p}.attention.self.query", f"l{i}_q"), f"l{i}_q", [0, 2, 1, 3])
        k = heads_of(linear(x, f"{p}.attention.self.key", f"l{i}_k"), f"l{i}_k", [0, 2, 3, 1])
        v = heads_of(linear(x, f"{p}.attention.self.value", f"l{i}_v"), f"l{i}_v", [0, 2, 1, 3])
        s = node("MatMul", [q, k], f"l{i}_qk")
        s = node("Div", [s, f32(float(np.sqrt(head)))], f"l{i}_scaled")
        s = node("Add", [s, bias], f"l{i}_masked")
        s = node("Softmax", [s], f"l{i}_probs", axis=-1)
        c = node("MatMul", [s, v], f"l{i}_ctx")
        c = node("Transpose", [c], f"l{i}_ctx_t", perm=[0, 2, 1, 3])
        c = node("Reshape", [c, merge], f"l{i}_ctx_r")
        a = linear(c, f"{p}.attention.output.dense", f"l{i}_attn_out")
        x = layernorm(node("Add", [a, x], f"l{i}_res1"), f"{p}.attention.output.LayerNorm", f"l{i}_ln1")
        f = linear(x, f"{p}.intermediate.dense", f"l{i}_ff1")
        g = node("Div", [f, f32(1.4142135623730951)], f"l{i}_gelu_div")
        g = node("Erf", [g], f"l{i}_gelu_erf")
        g = node("Add", [g, f32(1.0)], f"l{i}_gelu_add")
        g = node("Mul", [f, g], f"l{i}_gelu_mul")
        g = node("Mul", [g, f32(0.5)], f"l{i}_gelu")
        o = linear(g, f"{p}.output.dense", f"l{i}_ff2")
        x = layernorm(node("Add", [o, x], f"l{i}_res2"), f"{p}.output.LayerNorm", f"l{i}_ln2")

    # Mean pooling over the mask, then L2 normalisation.
    mf = node("Unsqueeze", [node("Cast", ["attention_mask"], "pool_mask_f", to=TensorProto.FLOAT), i64([2])], "pool_mask")
    summed = node("ReduceSum", [node("Mul", [x, mf], "masked_tokens"), i64([1])], "pool_sum", keepdims=0)
    count = node("Max", [node("ReduceSum", [mf, i64([1])], "pool_count_raw", keepdims=0), f32(1e-9)], "pool_count")
    pooled = node("Div", [summed, count], "pooled")
    node("LpNormalization", [pooled], "embedding", axis=-1, p=2)

    graph = helper.make_graph(
        nodes, "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    onnx.checker.check_model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out / "model-fp32.onnx")

    # ONNX Runtime's own BERT graph optimiser (fuses attention, GELU, skip-LayerNorm) if it
    # recognises the graph, then its dynamic int8 quantisation of every MatMul with constant weights.
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    optimized = optimize_model(str(out / "model-fp32.onnx"), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0)
    print("onnxruntime fusions:", json.dumps(optimized.get_fused_operator_statistics()), file=sys.stderr)
    optimized.save_model_to_file(str(out / "model-fp32-opt.onnx"))
    quantize_dynamic(str(out / "model-fp32-opt.onnx"), str(out / "model-int8.onnx"), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2])
