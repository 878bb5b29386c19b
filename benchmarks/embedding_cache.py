"""Embedding cache: encoding time of a second run vs the first (target: at least 20x less).

Encodes every text of the default synthetic benchmark (train, val, test) with frozen
MiniLM into an empty cache, then again through the same cache, the way a second
`python -m router_lab.train` run does.

    python benchmarks/embedding_cache.py
"""
from __future__ import annotations

import shutil
import tempfile
import time

from _common import machine

from router_lab.data.loaders.synthetic import load_synthetic
from router_lab.encoders import embed_texts

texts = [r.text for split in ("train", "val", "test") for r in load_synthetic(split)]
tmp = tempfile.mkdtemp(prefix="router_lab_cache_")
spec = {"name": "minilm", "pretrained": "package:minilm"}
times = []
for attempt in ("first (cold)", "second (cached)", "third (cached)"):
    st: dict = {}
    t0 = time.perf_counter()
    embed_texts(texts, spec, cache_dir=tmp, progress=False, stats=st)
    times.append(time.perf_counter() - t0)
    print(f"{attempt:16s} {len(texts)} texts: {times[-1]:8.3f} s  (encoded {st['misses']}, from cache {st['hits']})")
print(f"machine: {machine()}")
print(f"speed-up of a cached run: {times[0] / min(times[1:]):.0f}x (target >= 20x)")
shutil.rmtree(tmp, ignore_errors=True)
