"""Times ONNX Runtime on the encoder benchmark's text sets, the same way tools/encoder-bench
times ours: tokenise + encode, texts in file order, batch 1 (per-text latency) or batch N
(texts per second over the whole set), one JSON line per measurement.

usage: ort_bench.py MODEL.onnx TOKENIZER.json TEXTS.jsonl --label L --threads T --batch B [--runs R]
       ort_bench.py MODEL.onnx TOKENIZER.json REFERENCE.jsonl --check   (cosine to the reference)
"""
import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def session(path, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def tokenizer(path):
    t = Tokenizer.from_file(path)
    t.enable_truncation(256)
    t.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of each batch
    return t


def encode(s, tok, texts):
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    return s.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]


def main():
    a = argparse.ArgumentParser()
    a.add_argument("model"), a.add_argument("tokenizer"), a.add_argument("texts")
    a.add_argument("--label", default="ort"), a.add_argument("--threads", type=int, default=1)
    a.add_argument("--batch", type=int, default=32), a.add_argument("--runs", type=int, default=3)
    a.add_argument("--check", action="store_true")
    args = a.parse_args()
    rows = [json.loads(line) for line in open(args.texts, encoding="utf-8")]
    texts = [r["text"] for r in rows]
    s, tok = session(args.model, args.threads), tokenizer(args.tokenizer)
    if args.check:
        got = np.concatenate([encode(s, tok, texts[i : i + 32]) for i in range(0, len(texts), 32)])
        ref = np.array([r["embedding"] for r in rows], dtype=np.float32)
        cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
        print(json.dumps({"label": args.label, "texts": len(texts), "cosine_mean": round(float(cos.mean()), 6), "cosine_min": round(float(cos.min()), 6)}))
        return
    encode(s, tok, texts[:8])  # warm-up
    rates, latencies = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        for i in range(0, len(texts), args.batch):
            t0 = time.perf_counter()
            encode(s, tok, texts[i : i + args.batch])
            latencies.append((time.perf_counter() - t0) * 1000)
        rates.append(len(texts) / (time.perf_counter() - start))
    print(json.dumps({"label": args.label, "threads": args.threads, "batch": args.batch, "texts": len(texts),
                      "texts_per_second": round(statistics.median(rates), 1),
                      "median_ms": round(statistics.median(latencies), 3)}))


if __name__ == "__main__":
    main()
