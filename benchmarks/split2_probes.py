"""How much per-query signal does a frozen encoder carry on split2? Simple probes on the
cached embeddings, next to routing by task identity.

    python benchmarks/split2_probes.py                     # frozen MiniLM (the embedding cache)
    python benchmarks/split2_probes.py paths.data_dir=/data encoder=distilbert_base

RouterDC's split2 target (beat per-task best: ID 58.70, OOD 46.36) asks a router to find, per
query, an LLM better than the one that is best for the query's whole task. These probes are not
routers we ship; they bound what the embedding offers without any contrastive training:

- task classifier -> the predicted task's best LLM on the training files (pure task identity,
  learned; it has to guess a task for OOD queries);
- soft task prior: the same with the classifier's probabilities mixing the tasks' score profiles;
- kNN: mean effective scores of the k nearest training queries (cosine), argmax;
- ridge: linear regression from the embedding to the 7 effective scores, argmax;
- shrink: soft task prior + beta * (kNN-50 - prior), per-query evidence shrunk toward the task.

Every probe is fitted on the protocol's training data only (5 files x 1000 items) and scored on
the test sets with the framework's acc_predict. The grid is fixed (no selection on test data).
Hydra overrides after the script name are applied to `+experiment=routerdc_split2_minilm`.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import compose

ORDER = ["mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval", "MATH_prealgebra", "mbpp", "ceval", "javascript"]
LABELS = ["MMLU", "GSM8K", "CMMLU", "ARC-C", "HumanEval", "PreAlg", "MBPP", "C-EVAL", "JS"]


def load(overrides: list[str]):
    from router_lab.train import build_datamodule

    cfg = compose(["+experiment=routerdc_split2_minilm", *overrides], REPO / "outputs" / "tmp")
    if not cfg.encoder.frozen:
        sys.exit("error: the probes need a frozen encoder (encoder.frozen=true); expected cached embeddings")
    dm = build_datamodule(cfg)
    dm.setup()
    return dm


def fit_probes(X: np.ndarray, E: np.ndarray, y: np.ndarray, n_tasks: int, ks=(20, 50, 100, 1000)):
    """Fit every probe on training embeddings X, effective scores E and task ids y; returns a
    function from test embeddings to {probe name: chosen LLM per query}."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import normalize

    prior = np.stack([np.nanmean(E[y == k], 0) for k in range(n_tasks)])  # (T, L) per-task profile
    Xn = normalize(X)
    clf = LogisticRegression(max_iter=3000, C=10.0).fit(Xn, y)
    knn = {k: NearestNeighbors(n_neighbors=min(k, len(X)), metric="cosine").fit(X) for k in ks}
    ridge = {a: Ridge(alpha=a).fit(Xn, np.nan_to_num(E)) for a in (10.0, 100.0)}

    def probes(Xt: np.ndarray) -> dict[str, np.ndarray]:
        Xtn = normalize(Xt)
        p = clf.predict_proba(Xtn)
        soft = p @ prior
        near = {k: np.nanmean(E[nn.kneighbors(Xt, return_distance=False)], 1) for k, nn in knn.items()}
        out = {"task classifier -> train-best LLM": prior[p.argmax(1)].argmax(1), "soft task prior": soft.argmax(1)}
        out |= {f"kNN k={k}": v.argmax(1) for k, v in near.items()}
        out |= {f"ridge alpha={a:g}": r.predict(Xtn).argmax(1) for a, r in ridge.items()}
        out |= {f"shrink beta={b}": (soft + b * (near[50] - soft)).argmax(1) for b in (0.25, 0.5)}
        return out

    return probes


def main(overrides: list[str]) -> None:
    from router_lab.metrics import acc_predict

    t0 = time.perf_counter()
    dm = load(overrides)
    tr = dm.train_set
    X, E = tr.embeddings, tr.effective_scores()
    tasks = sorted(set(tr.tasks))
    y = np.array([tasks.index(t) for t in tr.tasks])
    probes = fit_probes(X, E, y, len(tasks))

    rows: dict[str, dict[str, float]] = {}
    for name in ORDER:
        ts = dm.test_sets[name]
        Et = ts.effective_scores()
        rows.setdefault("per-task best (test-set oracle of task identity)", {})[name] = \
            100 * acc_predict(np.full(len(ts), np.nanmean(Et, 0).argmax()), ts.scores, ts.score_types)
        for probe, chosen in probes(ts.embeddings).items():
            rows.setdefault(probe, {})[name] = 100 * acc_predict(chosen, ts.scores, ts.score_types)
    ids, oods = ORDER[:5], ORDER[5:8]
    print(f"split2 probes on frozen {dm.encoder.name} embeddings ({len(tr)} training queries, "
          f"{time.perf_counter() - t0:.0f} s)\n")
    print("| probe | " + " | ".join(LABELS[:8]) + " | **ID avg** | **OOD avg** | JS |")
    print("|---|" + "---:|" * 11)
    for probe, v in rows.items():
        cells = [f"{v[n]:.2f}" for n in ORDER[:8]]
        cells += [f"**{np.mean([v[n] for n in ids]):.2f}**", f"**{np.mean([v[n] for n in oods]):.2f}**",
                  f"{v['javascript']:.2f}"]
        print(f"| {probe} | " + " | ".join(cells) + " |")

    # Learning curve: the same probes fitted on a stratified fraction of each task's training
    # rows (3 subsample seeds below 100 %). A probe whose per-query evidence is real climbs with
    # more data; one that only recovers task identity is flat from the smallest fraction.
    # kNN at a fixed k (local evidence) and at k = a fifth of the rows (about one task's worth).
    curve = ["soft task prior", "kNN k=50", "kNN k=n/5", "ridge alpha=10", "shrink beta=0.25"]
    fracs, sub_seeds = (0.1, 0.25, 0.5, 1.0), (0, 1, 2)
    print(f"\nlearning curve: ID avg / OOD avg (mean over subsample seeds {list(sub_seeds)} below 100 %)\n")
    print("| training rows | " + " | ".join(curve) + " |")
    print("|---:|" + "---:|" * len(curve))
    for f in fracs:
        got: dict[str, list[tuple[float, float]]] = {c: [] for c in curve}
        for s in (sub_seeds if f < 1 else (0,)):
            rng = np.random.default_rng(s)
            keep = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == k), max(1, int(round(f * (y == k).sum()))),
                                                      replace=False) for k in range(len(tasks))]))
            sub = fit_probes(X[keep], E[keep], y[keep], len(tasks), ks=(50, len(keep) // 5))
            per: dict[str, dict[str, float]] = {c: {} for c in curve}
            for name in ORDER[:8]:
                ts = dm.test_sets[name]
                chosen = sub(ts.embeddings)
                chosen["kNN k=n/5"] = chosen[f"kNN k={len(keep) // 5}"]
                for c in curve:
                    per[c][name] = 100 * acc_predict(chosen[c], ts.scores, ts.score_types)
            for c in curve:
                got[c].append((np.mean([per[c][n] for n in ids]), np.mean([per[c][n] for n in oods])))
        n = int(round(f * len(y)))
        print(f"| {n} ({100 * f:.0f} %) | " + " | ".join(
            f"{np.mean([a for a, _ in got[c]]):.2f} / {np.mean([b for _, b in got[c]]):.2f}" for c in curve) + " |")
    print(f"\n{time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    main(sys.argv[1:])
