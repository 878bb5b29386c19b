"""RouterBench (the three published per-task training files): every router family x seeds
(classifier, RouterDC, RankRouter, kNN with k and weighting chosen on validation, MF),
frozen MiniLM, against the single LLMs on one cost range.

    nice -n 10 python benchmarks/routerbench.py                                 # 5 families x seeds 0 1 2
    python benchmarks/routerbench.py --families routerdc --seeds 0 --prompt left   # the whole prompt, cut left
    python benchmarks/routerbench.py --inputs-only                              # distinct encoder inputs only
    python benchmarks/routerbench.py --families knn --knn-grid 50:uniform       # one kNN setting

Data: ``data=routerbench data.dir=<dir>`` (default ../shared/data/routerbench). Without
``*_test.csv`` files the config carves, per task and seeded (split.seed=0): 20% test (never
used for training, checkpoint selection or choosing settings), then 20% of the rest as
validation (checkpoint selection, and where the targets are checked). Each (family, seed) is
one in-process ``router_lab.train.train(cfg)`` (the real entry point's function, Lightning
Trainer, best checkpoint); its router's utilities on the validation and test rows are then
swept over the one lambda grid (``router_lab.policy``) per task and pooled.

Prints, per split, task and pooled, mean ± std over seeds: acc_predict and mean cost of each
family at its own choice (lambda = inf) vs best single (the best LLM on that split), cheapest
and oracle; AIQ of the router vs the single-LLM hull over ONE cost range (cheapest to dearest
single LLM's mean cost); the least cost at which the router's hull matches the best single
LLM, and as a fraction of that LLM's cost; the router hull's least margin over the single-LLM
points (>= 0: on or above all of them). Writes summary.json and per-family PNGs under --out.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from _common import compose, machine  # noqa: E402

FAMILIES = {
    "classifier": ["model=classifier"],
    "routerdc": ["model=routerdc", "model.cluster_loss_weight=0", "model.task_loss_weight=1.0"],
    "rankrouter": ["model=rankrouter"],
    # kNN: k and weighting are chosen on validation from --knn-grid (see select_knn); these are
    # the defaults of a run outside the grid.
    "knn": ["model=knn"],
    "mf": ["model=mf"],
}
PROMPTS = {"strip": ["data.source.strip_few_shot=true"], "left": ["data.source.strip_few_shot=false"],
           "right": ["data.source.strip_few_shot=false", "data.truncation_side=right"]}



def distinct_inputs(data_dir: str, max_length: int = 256) -> list[dict]:
    """Per task: rows, distinct questions (the prompt's final question) and distinct encoder
    inputs (token ids after truncation) for each prompt setting."""
    from router_lab.data.loaders.routerbench import final_question, load_routerbench
    from router_lab.encoders import EncoderSpec, load_tokenizer

    rows = []
    for f in sorted(Path(data_dir).glob("*_train.csv")):
        recs = load_routerbench(f, on_missing_score="drop_record")
        row = {"file": f.name, "rows": len(recs), "distinct_questions": len({final_question(r.query) for r in recs})}
        for name, side, strip in (("right", "right", False), ("left", "left", False), ("strip", "left", True)):
            tok = load_tokenizer(EncoderSpec.from_config({"truncation_side": side, "max_length": max_length}))
            texts = [final_question(r.query) if strip else r.query for r in recs]
            ids = tok(texts, truncation=True, max_length=max_length)["input_ids"]
            row[f"distinct_{name}"] = len({tuple(x) for x in ids})
        rows.append(row)
    return rows


def split_outputs(model, split) -> dict[str, dict]:
    """The router's utilities and own choices on a split's rows, per task and pooled."""
    import torch

    with torch.no_grad():
        d = model.decide({"embedding": torch.as_tensor(split.embeddings), "costs": torch.as_tensor(split.costs)})
    base = {"utilities": d["utilities"].double().numpy(), "chosen": d["llm"].numpy(), "scores": split.scores,
            "costs": split.costs, "is_probability": np.array([t == "probability" for t in split.score_types])}
    tasks = np.array(split.tasks)
    out = {t: {k: v[tasks == t] for k, v in base.items()} for t in sorted(set(split.tasks))}
    out["pooled"] = base
    return out


def measure(out: dict) -> dict:
    from router_lab import metrics as M
    from router_lab.cost_quality import sweep

    r = sweep(out)
    types = ["probability" if p else "multi_attempt" for p in out["is_probability"]]
    eff = M.effective_scores(out["scores"], types)
    cheapest = int(np.argmin(out["costs"].mean(0)))
    n = len(out["scores"])
    best = r["best_single"]
    return {
        "router_acc": M.acc_predict(out["chosen"], out["scores"], types),
        "router_cost": M.mean_cost(out["chosen"], out["costs"]),
        "best_single_acc": best["quality"], "best_single_cost": best["cost"], "best_single": best["index"],
        "cheapest_acc": M.acc_predict(np.full(n, cheapest), out["scores"], types),
        "cheapest_cost": M.mean_cost(np.full(n, cheapest), out["costs"]),
        "oracle_acc": M.oracle_acc_predict(out["scores"], types),
        "oracle_cost": float(np.mean([c[np.nanargmax(np.where(e == np.nanmax(e), -c, -np.inf))]
                                      for e, c in zip(eff, out["costs"])])),
        "aiq": r["aiq"], "single_aiq": r["zero_router_aiq"], "cost_range": r["cost_range"],
        "max_quality": r["max_quality"],
        "cost_to_match": r["cost_to_match_best_single"],
        "match_fraction": r["cost_to_match_best_single"] / best["cost"],
        "min_margin": r["min_margin_over_llms"],
        "sweep": r,
    }


def run_one(family: str, seed: int, prompt: str, data_dir: str, out_root: Path, extra: list[str],
            tag: str = "") -> dict:
    from router_lab.train import train

    run_dir = out_root / f"{prompt}_{family}{tag}_seed{seed}"
    overrides = ["data=routerbench", f"data.dir={data_dir}", f"seed={seed}", "logger=none",
                 "extras.print_config=false", *FAMILIES[family], *PROMPTS[prompt], *extra]
    cfg = compose(overrides, run_dir)
    t0 = time.perf_counter()
    metrics, objects = train(cfg)
    model, dm = objects["model"], objects["datamodule"]
    model.eval()
    res = {"family": family, "seed": seed, "prompt": prompt, "seconds": time.perf_counter() - t0,
           "llm_names": list(dm.pool.names), "overrides": overrides,
           "sizes": {"train": len(dm.train_set), "val": len(dm.val_set),
                     "test": {k: len(v) for k, v in dm.test_sets.items()}}}
    test_rows = [r for s in dm.test_sets.values() for r in s.records]
    seen = dm.train_set.records + dm.val_set.records
    if dm.test_carved:
        # The carve is ours: no test row may be in train or validation.
        assert not ({r.id for r in test_rows} & {r.id for r in seen}), "test rows leaked into train/val"
    else:
        # Published test files are data: say how many of their questions training also saw.
        shared = {r.query for r in test_rows} & {r.query for r in seen}
        res["test_questions_also_in_train"] = len(shared)
        if shared:
            print(f"note: {len(shared)} test question(s) also appear in the training files", flush=True)
    val_out = split_outputs(model, dm.val_set)
    res["val"] = {t: measure(o) for t, o in val_out.items()}
    # The test sets are per task (test_split_by_task); pool them for the pooled figure.
    from router_lab.data.datamodule import RoutingSplit

    parts = list(dm.test_sets.values())
    pooled = RoutingSplit(name="test", records=test_rows, scores=np.concatenate([p.scores for p in parts]),
                          costs=np.concatenate([p.costs for p in parts]),
                          score_types=[t for p in parts for t in p.score_types], tasks=[t for p in parts for t in p.tasks],
                          labels=np.concatenate([p.labels for p in parts]),
                          cluster_ids=np.concatenate([p.cluster_ids for p in parts]),
                          task_ids=np.concatenate([p.task_ids for p in parts]),
                          embeddings=np.concatenate([p.embeddings for p in parts]))
    test_out = split_outputs(model, pooled)
    res["test"] = {t: measure(o) for t, o in test_out.items()}
    # Per-row utilities, scores, costs and tasks of both splits (for post-hoc analyses such as
    # benchmarks/routerbench_shrink.py); train rows too, for priors fitted on train only.
    train_out = split_outputs(model, dm.train_set)
    arrays = {}
    for split, o, data in (("train", train_out, dm.train_set), ("val", val_out, dm.val_set), ("test", test_out, pooled)):
        arrays.update({f"{split}_{k}": v for k, v in o["pooled"].items()})
        arrays[f"{split}_task"] = np.array(data.tasks)
        arrays[f"{split}_embedding"] = np.asarray(data.embeddings, dtype=np.float32)
    np.savez_compressed(run_dir / "outputs.npz", **arrays)
    a = res["val"]["pooled"]
    print(f"{prompt} {family} seed {seed}: val pooled router {100 * a['router_acc']:.2f} at {a['router_cost']:.6f}, "
          f"AIQ {a['aiq']:.4f} vs single {a['single_aiq']:.4f} ({res['seconds']:.0f} s)", flush=True)
    return res


def ms(vals, scale=1.0, fmt="{:.2f}") -> str:
    v = np.asarray([x for x in vals if x is not None and not (isinstance(x, float) and math.isnan(x))], float) * scale
    if v.size == 0:
        return "never"
    s = (fmt + " ± " + fmt).format(v.mean(), v.std())
    return s + ("" if v.size == len(vals) else f" ({v.size}/{len(vals)} seeds)")


def tables(results: list[dict], split: str) -> str:
    fams = list(dict.fromkeys(r["family"] for r in results))
    tasks = list(results[0][split])
    lines = []
    for t in tasks:
        ref = results[0][split][t]
        names = results[0]["llm_names"]
        lines += [f"\n**{split} / {t}** (best single: `{names[ref['best_single']]}`; AIQ cost range "
                  f"[{ref['cost_range'][0]:.6f}, {ref['cost_range'][1]:.6f}])",
                  "",
                  "| router | acc_predict % | mean cost | AIQ router | AIQ single-LLM hull | cost to match best single "
                  "| ÷ best single's cost | least hull margin over LLMs (pts) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for f in fams:
            rs = [r[split][t] for r in results if r["family"] == f]
            lines.append(f"| {f} | {ms([x['router_acc'] for x in rs], 100)} | {ms([x['router_cost'] for x in rs], 1, '{:.6f}')} "
                         f"| {ms([x['aiq'] for x in rs], 1, '{:.4f}')} | {ms([x['single_aiq'] for x in rs], 1, '{:.4f}')} "
                         f"| {ms([x['cost_to_match'] for x in rs], 1, '{:.6f}')} | {ms([x['match_fraction'] for x in rs])} "
                         f"| {ms([x['min_margin'] for x in rs], 100)} |")
        for b in ("best_single", "cheapest", "oracle"):
            lines.append(f"| *{b}* | {100 * ref[b + '_acc']:.2f} | {ref[b + '_cost']:.6f} | | | | | |")
    return "\n".join(lines)


def targets(results: list[dict], split: str) -> str:
    fams = list(dict.fromkeys(r["family"] for r in results))
    tasks = [t for t in results[0][split] if t != "pooled"]
    lines = [f"\n**Targets on {split}** (per seed; ✓ = holds)", "",
             "| router | hull on/above every LLM point (tasks) | AIQ ≥ single-LLM hull AIQ (tasks) "
             "| best-single quality at ≤ ½ its cost (tasks) |", "|---|---|---|---|"]
    for f in fams:
        rs = [r for r in results if r["family"] == f]
        cells = []
        for key in ("margin", "aiq", "half"):
            per_seed = []
            for r in rs:
                ok = 0
                for t in tasks:
                    m = r[split][t]
                    ok += {"margin": m["min_margin"] >= -1e-9, "aiq": m["aiq"] >= m["single_aiq"] - 1e-9,
                           "half": m["match_fraction"] <= 0.5}[key]
                per_seed.append(f"{ok}/{len(tasks)}")
            cells.append(" ".join(f"s{r['seed']}: {c}" for r, c in zip(rs, per_seed)))
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plots(results: list[dict], out_root: Path) -> list[Path]:
    from router_lab.cost_quality import plot

    paths = []
    for r in results:
        if r["seed"] != results[0]["seed"]:
            continue
        for split in ("val", "test"):
            p = out_root / f"cost_quality_{r['prompt']}_{r['family']}_{split}.png"
            plot({t: m["sweep"] for t, m in r[split].items()}, p, r["llm_names"],
                 title=f"{r['family']} on RouterBench ({split}, seed {r['seed']}, prompt={r['prompt']})")
            paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--prompt", default="strip", choices=list(PROMPTS))
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "routerbench"))
    ap.add_argument("--out", default=str(REPO / "outputs" / "benchmarks" / "routerbench"))
    ap.add_argument("--inputs-only", action="store_true")
    ap.add_argument("--overrides", nargs="*", default=[])
    ap.add_argument("--knn-grid", nargs="*", default=["10:distance", "20:distance", "50:distance", "100:distance",
                                                      "200:distance", "20:uniform", "50:uniform", "100:uniform"],
                    help="k:weighting settings of kNN, one chosen on validation (empty: the config's)")
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    if not Path(args.data_dir).is_dir():
        sys.exit(f"error: {args.data_dir}: no such directory; expected the RouterBench *_train.csv files")
    out_root = Path(args.out)
    out_root.mkdir(parents=True, exist_ok=True)
    print(f"# RouterBench benchmark\n\n- machine: {machine()}\n- command: python benchmarks/routerbench.py "
          + " ".join(sys.argv[1:]))
    inputs = distinct_inputs(args.data_dir)
    print("\n| file | rows | distinct questions | distinct inputs: whole prompt, cut right | cut left | "
          "final question only |\n|---|---:|---:|---:|---:|---:|")
    for r in inputs:
        print(f"| {r['file']} | {r['rows']} | {r['distinct_questions']} | {r['distinct_right']} | {r['distinct_left']} "
              f"| {r['distinct_strip']} |")
    if args.inputs_only:
        return
    def cached_run(f: str, s: int, extra: list[str], tag: str = "") -> dict:
        # Each run's result is kept on disk as it finishes; a re-run with the same settings reuses it.
        done = out_root / f"result_{args.prompt}_{f}{tag}_seed{s}.json"
        if done.exists():
            return json.loads(done.read_text())
        r = run_one(f, s, args.prompt, args.data_dir, out_root, [*args.overrides, *extra], tag)
        done.write_text(json.dumps(r, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
        return r

    results, knn_grid = [], []
    for f in args.families:
        extra = []
        if f == "knn" and args.knn_grid:
            # k and weighting chosen on validation (first seed; kNN does not depend on the seed):
            # the largest mean over tasks of (router AIQ - single-LLM hull AIQ), then smaller k.
            for kw in args.knn_grid:
                k, w = kw.split(":")
                r = cached_run(f, args.seeds[0], [f"model.k={k}", f"model.weighting={w}"], f"_k{k}_{w}")
                gap = float(np.mean([m["aiq"] - m["single_aiq"] for t, m in r["val"].items() if t != "pooled"]))
                knn_grid.append({"k": int(k), "weighting": w, "val_mean_task_aiq_gap": gap, "result": r})
            best = max(knn_grid, key=lambda g: (round(g["val_mean_task_aiq_gap"], 6), -g["k"]))
            print(f"knn grid (validation): " + ", ".join(f"k={g['k']} {g['weighting']}: {g['val_mean_task_aiq_gap']:+.4f}"
                                                         for g in knn_grid) + f" -> k={best['k']} {best['weighting']}")
            extra = [f"model.k={best['k']}", f"model.weighting={best['weighting']}"]
            tag = f"_k{best['k']}_{best['weighting']}"
            results += [cached_run(f, s, extra, tag) for s in args.seeds]
            continue
        results += [cached_run(f, s, extra) for s in args.seeds]
    r0 = results[0]
    print(f"\nsplit sizes: train {r0['sizes']['train']}, val {r0['sizes']['val']}, test {r0['sizes']['test']}")
    for split in ("val", "test"):
        print(tables(results, split))
        print(targets(results, split))
    for p in plots(results, out_root):
        print(f"plot: {p}")
    slim = [{**r, "val": {t: {k: v for k, v in m.items() if k != "sweep"} for t, m in r["val"].items()},
             "test": {t: {k: v for k, v in m.items() if k != "sweep"} for t, m in r["test"].items()}} for r in results]
    grid = [{k: v for k, v in g.items() if k != "result"} for g in knn_grid]
    (out_root / f"summary_{args.prompt}.json").write_text(json.dumps({"inputs": inputs, "runs": slim, "knn_grid": grid},
                                                                     indent=1))


if __name__ == "__main__":
    main()
