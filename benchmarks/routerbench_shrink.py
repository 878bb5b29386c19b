"""RouterBench, after the fact: why the per-task targets are (not) met, on the routers' saved
outputs (``outputs.npz`` that ``benchmarks/routerbench.py`` writes per run).

    python benchmarks/routerbench_shrink.py                                   # outputs/benchmarks/routerbench/main
    python benchmarks/routerbench_shrink.py --runs <dir> --families routerdc knn

Three analyses, every choice made on the validation split, test shown for the record only:

1. **Probe AUCs**: how well per-query correctness of each LLM is predictable from the frozen
   embedding, per task: a logistic-regression probe (scikit-learn, C chosen on validation from
   a small grid) fitted on the train rows of that task, ROC AUC on validation (and test).
   AUC 0.5 = the embedding carries no evidence about which questions that LLM gets right.
2. **Shrinkage toward a prior**: utilities ``alpha * u + (1 - alpha) * prior``, prior = the
   mean training score of each LLM over the query's ``K`` nearest training queries (a
   neighbourhood mean; with K large within one task it is the task prior, and the router need
   not be told the task). ``alpha`` and ``K`` chosen on validation (most tasks meeting both
   hull targets, then mean AIQ gap); alpha = 0 is a pure neighbourhood-prior router.
3. **Lambda-grid density**: the same utilities swept on the project's grid (20 points per
   decade) and on a 10x denser one, to see whether hull margins come from grid gaps.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import machine  # noqa: E402
from routerbench import measure  # noqa: E402

TASK_NAMES = {"arc-challenge": "ARC", "mbpp": "MBPP", "winogrande": "Winogrande"}


def load(path: Path) -> dict:
    z = np.load(path, allow_pickle=False)
    return {k: z[k] for k in z.files}


def per_task(d: dict, split: str, util: np.ndarray) -> dict[str, dict]:
    tasks = d[f"{split}_task"]
    base = {"utilities": util, "chosen": util.argmax(1), "scores": d[f"{split}_scores"],
            "costs": d[f"{split}_costs"], "is_probability": d[f"{split}_is_probability"]}
    return {t: {k: v[tasks == t] for k, v in base.items()} for t in sorted(set(tasks.tolist()))}


def evaluate(d: dict, split: str, util: np.ndarray, lambdas=None) -> dict[str, dict]:
    from router_lab.cost_quality import sweep

    out = {}
    for t, o in per_task(d, split, util).items():
        if lambdas is None:
            out[t] = measure(o)
        else:
            r = sweep(o, lambdas(o["costs"]))
            out[t] = {"aiq": r["aiq"], "single_aiq": r["zero_router_aiq"], "min_margin": r["min_margin_over_llms"],
                      "match_fraction": r["cost_to_match_best_single"] / r["best_single"]["cost"]}
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def neighbourhood_prior(d: dict, split: str, k: int) -> np.ndarray:
    """(N, L) mean effective training score of each LLM over the k nearest training queries."""
    tr, q = unit(d["train_embedding"]), unit(d[f"{split}_embedding"])
    eff = (d["train_scores"] > 0).astype(float)  # probability rows binarised as acc_predict counts them
    idx = np.argsort(-(q @ tr.T), axis=1)[:, :k]
    return eff[idx].mean(1)


def score_tuple(res: dict[str, dict]) -> tuple:
    tasks = list(res)
    met = sum((res[t]["min_margin"] >= -1e-9) and (res[t]["aiq"] >= res[t]["single_aiq"] - 1e-9) for t in tasks)
    return met, float(np.mean([res[t]["aiq"] - res[t]["single_aiq"] for t in tasks]))


def probe_aucs(d: dict, llm_names: list[str]) -> list[dict]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rows = []
    for t in sorted(set(d["train_task"].tolist())):
        m = {s: d[f"{s}_task"] == t for s in ("train", "val", "test")}
        x = {s: unit(d[f"{s}_embedding"][m[s]]) for s in m}
        for j, name in enumerate(llm_names):
            y = {s: (d[f"{s}_scores"][m[s], j] > 0).astype(int) for s in m}
            row = {"task": t, "llm": name, "train_rate": float(y["train"].mean()), "val_rate": float(y["val"].mean())}
            if len(set(y["train"])) < 2 or len(set(y["val"])) < 2:
                rows.append({**row, "val_auc": float("nan"), "test_auc": float("nan"), "C": None})
                continue
            best = None
            for c in (0.01, 0.1, 1.0, 10.0):
                p = LogisticRegression(C=c, max_iter=2000).fit(x["train"], y["train"])
                auc = roc_auc_score(y["val"], p.predict_proba(x["val"])[:, 1])
                if best is None or auc > best[0]:
                    best = (auc, c, p)
            test_auc = (roc_auc_score(y["test"], best[2].predict_proba(x["test"])[:, 1])
                        if len(set(y["test"])) == 2 else float("nan"))
            rows.append({**row, "val_auc": best[0], "test_auc": test_auc, "C": best[1]})
    return rows


def main() -> None:
    import json

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=str(REPO / "outputs" / "benchmarks" / "routerbench" / "main"))
    ap.add_argument("--families", nargs="+", default=["classifier", "routerdc", "rankrouter", "knn", "mf"])
    ap.add_argument("--alphas", nargs="+", type=float, default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ap.add_argument("--prior-ks", nargs="+", type=int, default=[50, 100, 200])
    args = ap.parse_args()
    runs = Path(args.runs)
    print(f"# RouterBench post-hoc analyses\n\n- machine: {machine()}\n- runs: {runs}")
    results = sorted(runs.glob("result_strip_*_seed*.json"))
    if not results:
        sys.exit(f"error: {runs}: no result_strip_*_seed*.json; run benchmarks/routerbench.py --out {runs} first")
    by_family: dict[str, list[tuple[dict, dict]]] = {}
    for rp in results:
        r = json.loads(rp.read_text())
        if r["family"] not in args.families:
            continue
        tag = rp.stem[len("result_strip_"):]
        npz = runs / f"strip_{tag}" / "outputs.npz"
        if r["family"] == "knn" and tag.rsplit("_seed", 1)[0] not in chosen_knn(runs):
            continue  # a kNN grid setting validation did not choose
        if npz.exists():
            by_family.setdefault(r["family"], []).append((r, load(npz)))
    any_run = next(iter(by_family.values()))[0]
    names, d0 = any_run[0]["llm_names"], any_run[1]

    # 1. probes
    print("\n## 1. Probe AUCs: per-query correctness of each LLM from the frozen MiniLM embedding\n")
    print("Logistic regression on the task's train rows (C from {0.01, 0.1, 1, 10} by validation AUC); "
          "validation AUC (test AUC in brackets). Rate = share of validation questions the LLM gets right.\n")
    rows = probe_aucs(d0, names)
    tasks = sorted(set(d0["train_task"].tolist()))
    print("| LLM | " + " | ".join(f"{TASK_NAMES.get(t, t)} rate | AUC" for t in tasks) + " |")
    print("|---|" + "---:|---:|" * len(tasks))
    for n in names:
        cells = []
        for t in tasks:
            r = next(x for x in rows if x["task"] == t and x["llm"] == n)
            cells += [f"{100 * r['val_rate']:.0f}%", f"{r['val_auc']:.2f} ({r['test_auc']:.2f})"]
        print(f"| {n} | " + " | ".join(cells) + " |")
    for t in tasks:
        a = [x["val_auc"] for x in rows if x["task"] == t and np.isfinite(x["val_auc"])]
        print(f"\n{TASK_NAMES.get(t, t)}: mean validation AUC over LLMs {np.mean(a):.3f} (min {min(a):.2f}, max {max(a):.2f})",
              end="")
    print()

    # 2. shrinkage
    print("\n## 2. Shrinkage toward the neighbourhood prior (alpha, K chosen on validation per family and seed)\n")
    print("| family | seed | chosen alpha, K | val: tasks meeting both hull targets, mean AIQ gap | "
          "test: tasks meeting both, mean AIQ gap | val / test tasks at ≤ ½ best single's cost | "
          "alpha = 1 (as trained): val → test tasks meeting both |")
    print("|---|---:|---|---|---|---|---|")
    summary = []
    priors = {(s, k): neighbourhood_prior(d0, s, k) for s in ("val", "test") for k in args.prior_ks}
    for k in args.prior_ks:  # alpha = 0: the neighbourhood prior alone (no family, no seed)
        v, t = evaluate(d0, "val", priors[("val", k)]), evaluate(d0, "test", priors[("test", k)])
        sv, st = score_tuple(v), score_tuple(t)
        half = (sum(m["match_fraction"] <= 0.5 for m in v.values()), sum(m["match_fraction"] <= 0.5 for m in t.values()))
        print(f"| *prior only* | – | 0, {k} | {sv[0]}/3, {sv[1]:+.4f} | {st[0]}/3, {st[1]:+.4f} | "
              f"{half[0]}/3 / {half[1]}/3 | – |")
    for fam, runs_f in by_family.items():
        for r, d in sorted(runs_f, key=lambda x: x[0]["seed"]):
            if not np.array_equal(d["val_task"], d0["val_task"]):
                sys.exit("error: runs use different validation splits; expected one carve")
            grid = {}
            for k in args.prior_ks:
                for a in args.alphas:
                    u = a * d["val_utilities"] + (1 - a) * priors[("val", k)]
                    grid[(a, k)] = evaluate(d, "val", u)
            best = max(grid, key=lambda ak: (*score_tuple(grid[ak]), ak[0]))
            a, k = best
            test = evaluate(d, "test", a * d["test_utilities"] + (1 - a) * priors[("test", k)])
            plain_val, plain_test = evaluate(d, "val", d["val_utilities"]), evaluate(d, "test", d["test_utilities"])
            sv, st = score_tuple(grid[best]), score_tuple(test)
            half = (sum(m["match_fraction"] <= 0.5 for m in grid[best].values()),
                    sum(m["match_fraction"] <= 0.5 for m in test.values()))
            print(f"| {fam} | {r['seed']} | {a:g}, {k} | {sv[0]}/3, {sv[1]:+.4f} | {st[0]}/3, {st[1]:+.4f} | "
                  f"{half[0]}/3 / {half[1]}/3 | {score_tuple(plain_val)[0]}/3 → {score_tuple(plain_test)[0]}/3 |")
            summary.append({"family": fam, "seed": r["seed"], "alpha": a, "k": k, "val": grid[best], "test": test})

    # 3. grid density
    from router_lab.policy import lambda_grid

    print("\n## 3. Lambda-grid density (as trained, alpha = 1): least hull margin (pts) per task, 20 vs 200 points "
          "per decade; tasks meeting both hull targets (20 → 200)\n")
    print("| family | seed | " + " | ".join(f"val {TASK_NAMES.get(t, t)}" for t in tasks)
          + " | val tasks meeting both | test tasks meeting both |")
    print("|---|---:|" + "---|" * len(tasks) + "---|---|")
    fine_grid = lambda c: lambda_grid(c, 200)  # noqa: E731
    for fam, runs_f in by_family.items():
        for r, d in sorted(runs_f, key=lambda x: x[0]["seed"]):
            coarse = evaluate(d, "val", d["val_utilities"])
            fine = evaluate(d, "val", d["val_utilities"], lambdas=fine_grid)
            tc, tf = evaluate(d, "test", d["test_utilities"]), evaluate(d, "test", d["test_utilities"], lambdas=fine_grid)
            print(f"| {fam} | {r['seed']} | " + " | ".join(
                f"{100 * coarse[t]['min_margin']:+.2f} / {100 * fine[t]['min_margin']:+.2f}" for t in tasks)
                + f" | {score_tuple(coarse)[0]} → {score_tuple(fine)[0]} | {score_tuple(tc)[0]} → {score_tuple(tf)[0]} |")
    (runs / "shrink_summary.json").write_text(json.dumps({"probes": rows, "shrink": summary}, indent=1, default=float))


def chosen_knn(runs: Path) -> set[str]:
    """The kNN setting routerbench.py chose on validation (its summary), e.g. {'knn_k100_uniform'}."""
    import json

    p = runs / "summary_strip.json"
    if not p.exists():
        return set()
    grid = json.loads(p.read_text()).get("knn_grid") or []
    if not grid:
        return set()
    best = max(grid, key=lambda g: (round(g["val_mean_task_aiq_gap"], 6), -g["k"]))
    return {f"knn_k{best['k']}_{best['weighting']}"}


if __name__ == "__main__":
    main()
