"""Frozen encoders on CLINC150 (in-scope, data_full): multilingual-e5-small vs MiniLM, on the
same seeded subset, with a kNN classifier and a logistic-regression probe on the cached
embeddings (the label-routing task a classifier router learns).

    python benchmarks/encoders_clinc150.py                        # minilm, e5_small; 20 train / 5 test per intent
    python benchmarks/encoders_clinc150.py --train-per-intent 100 --test-per-intent 20

Data: ``<data_dir>/clinc150/clinc150_train_val.json`` through the project's loader. Train =
a seeded sample of CLINC's ``train`` split (``--train-per-intent`` per intent); test = a seeded
sample of its ``val`` split (``--test-per-intent`` per intent), which nothing here tunes on:
kNN's k and the probe's C are chosen by 5-fold cross-validation on the train sample only.
Embeddings go through ``router_lab.encoders.embed_texts`` with the encoder configs of
``conf/encoder/`` (the same cache a training run uses). A subset, because encoding all
18 000 texts with e5 takes ~1.5 h on a loaded 2-core CPU; the full-data comparison is
``python benchmarks/clinc150.py frozen domain encoder=e5_small seeds=1,2,3``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import machine  # noqa: E402


def sample(records, per_intent: int, seed: int):
    rng = np.random.default_rng(seed)
    by = {}
    for r in records:
        by.setdefault(r.label, []).append(r)
    out = []
    for lab in sorted(by):
        rs = by[lab]
        out += [rs[i] for i in sorted(rng.choice(len(rs), min(per_intent, len(rs)), replace=False))]
    return out


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoders", nargs="+", default=["minilm", "e5_small"])
    ap.add_argument("--train-per-intent", type=int, default=20)
    ap.add_argument("--test-per-intent", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=os.environ.get("ROUTER_LAB_DATA_DIR", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--cache-dir", default=os.environ.get("ROUTER_LAB_CACHE_DIR", str(REPO / "outputs" / "cache")))
    args = ap.parse_args()
    path = Path(args.data_dir) / "clinc150" / "clinc150_train_val.json"
    if not path.is_file():
        sys.exit(f"error: {path}: no such file; expected CLINC150's data_full JSON (clinc150_train_val.json)")
    from omegaconf import OmegaConf
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KNeighborsClassifier

    from router_lab import CONF_DIR
    from router_lab.data.sources import load_records
    from router_lab.encoders import embed_texts

    data = {}
    for split, n in (("train", args.train_per_intent), ("val", args.test_per_intent)):
        recs, _ = load_records({"loader": "clinc150", "path": str(path), "split": split, "label": "intent"})
        dom, _ = load_records({"loader": "clinc150", "path": str(path), "split": split, "label": "domain"})
        domain_of = {r.id: r.label for r in dom}
        s = sample(recs, n, args.seed)
        data[split] = ([r.query for r in s], np.array([r.label for r in s]), np.array([domain_of[r.id] for r in s]))
    print(f"# Frozen encoders on CLINC150\n\n- machine: {machine()}\n- command: python benchmarks/encoders_clinc150.py "
          + " ".join(sys.argv[1:]) + f"\n- train: {len(data['train'][0])} queries of CLINC `train` "
          f"({args.train_per_intent} per intent, seed {args.seed}); test: {len(data['val'][0])} of `val` "
          f"({args.test_per_intent} per intent)\n")
    rows = []
    for name in args.encoders:
        spec = OmegaConf.to_container(OmegaConf.load(Path(CONF_DIR) / "encoder" / f"{name}.yaml"), resolve=True)
        emb, secs = {}, {}
        for split in ("train", "val"):
            st: dict = {}
            t0 = time.perf_counter()
            emb[split] = embed_texts(data[split][0], spec, cache_dir=Path(args.cache_dir), stats=st)
            secs[split] = (time.perf_counter() - t0, st.get("misses", 0))
        for lab_i, labels in ((1, "intent (150)"), (2, "domain (10)")):
            ytr, yte = data["train"][lab_i], data["val"][lab_i]
            knn = GridSearchCV(KNeighborsClassifier(metric="cosine", weights="distance"),
                               {"n_neighbors": [1, 5, 10, 20]}, cv=5).fit(emb["train"], ytr)
            lr = GridSearchCV(LogisticRegression(max_iter=3000), {"C": [1.0, 10.0, 100.0]}, cv=5).fit(emb["train"], ytr)
            rows.append((name, labels, 100 * knn.score(emb["val"], yte), knn.best_params_["n_neighbors"],
                         100 * lr.score(emb["val"], yte), lr.best_params_["C"]))
            print(f"{name} {labels}: kNN {rows[-1][2]:.2f} (k={rows[-1][3]}), logistic {rows[-1][4]:.2f} "
                  f"(C={rows[-1][5]:g})", flush=True)
        enc = sum(s for s, _ in secs.values())
        print(f"{name}: encoding {enc:.0f} s for {sum(m for _, m in secs.values())} texts not in the cache", flush=True)
    print("\n| encoder (frozen) | labels | kNN accuracy % (k by CV) | logistic probe accuracy % (C by CV) |\n"
          "|---|---|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} (k={r[3]}) | {r[4]:.2f} (C={r[5]:g}) |")


if __name__ == "__main__":
    main()
