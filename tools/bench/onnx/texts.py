"""Writes the encoder benchmark's two text sets as JSON Lines {"id","text"}:
titles.jsonl — the first 2,000 distinct product descriptions of UCI Online Retail, in file order;
reviews.jsonl — the first 500 Amazon Alexa reviews of at least 150 characters.

usage: texts.py SHARED_DATA_DIR OUT_DIR
"""
import csv
import gzip
import json
import sys
from pathlib import Path

data, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
titles = []
with gzip.open(data / "online_retail/lines.csv.gz", "rt", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        d = (row["Description"] or "").strip()
        if d and d not in titles:
            titles.append(d)
            if len(titles) == 2000:
                break
reviews = []
with open(data / "amazon_alexa_reviews/amazon_alexa.tsv", encoding="utf-8-sig") as f:
    for row in csv.DictReader(f, delimiter="\t"):
        r = row["verified_reviews"].strip()
        if len(r) >= 150:
            reviews.append(r)
            if len(reviews) == 500:
                break
for name, texts in (("titles", titles), ("reviews", reviews)):
    with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"id": f"{name}-{i:04d}", "text": t}, ensure_ascii=False) + "\n")
