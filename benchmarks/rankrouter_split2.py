"""RankRouter on split2 (frozen MiniLM): BPR vs BCE over several seeds, acc_predict per dataset
(mean ± std) beside the baselines and RouterDC, and the AUC on the validation pairs.

    python benchmarks/rankrouter_split2.py                          # seeds 0 1 2, bpr and bce
    python benchmarks/rankrouter_split2.py --losses bpr --seeds 0 --overrides trainer.max_epochs=2
    python benchmarks/rankrouter_split2.py --routerdc outputs/benchmarks/routerdc_split2/<tag>/summary.json

Each (loss, seed) is one `python -m router_lab.train +experiment=rankrouter_split2 encoder=minilm
model.loss=... seed=...` subprocess (``--jobs`` at a time, one CPU thread each); its
metrics.json and training_history.json are read back. Validation = a held-out 10% of the
training files (the experiment's data.val: null); the best checkpoint is the one with the best
validation pairwise AUC. Prints markdown tables (paste into benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from routerdc_split2 import ORDER  # noqa: E402  (same datasets, same order)

BASELINES = ["best_single", "best_per_task", "oracle"]


def run_one(loss: str, seed: int, overrides: list[str], out_root: Path) -> dict:
    run_dir = out_root / f"{loss}_seed{seed}"
    cmd = [sys.executable, "-m", "router_lab.train", "+experiment=rankrouter_split2", "encoder=minilm",
           f"model.loss={loss}", f"seed={seed}", "logger=none", "extras.print_config=false",
           f"hydra.run.dir={run_dir}", *overrides]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"{loss} seed {seed} failed ({r.returncode}): {r.stderr.strip()[-1500:]}")
    m = json.loads((run_dir / "metrics.json").read_text())
    m["time/wall_seconds"] = time.perf_counter() - t0
    hist = json.loads((run_dir / "training_history.json").read_text())["history"]
    m["val/auc_last"] = hist[-1].get("val/auc")
    m["best_epoch"] = int(np.nanargmax([h.get("val/auc") or np.nan for h in hist]))
    print(f"{loss} seed {seed}: ID {100 * m['avg_in_distribution/router/acc_predict']:.2f}  "
          f"OOD {100 * m['avg_out_of_distribution/router/acc_predict']:.2f}  val AUC {m['val/score_best']:.4f} "
          f"(epoch {m['best_epoch']})  {m['time/wall_seconds']:.0f} s", flush=True)
    return m


def mean_std(vals: list[float]) -> str:
    return f"{np.mean(vals):.2f} ± {np.std(vals):.2f}" if vals else ""


def routerdc_runs(path: str | None) -> list[dict]:
    """RouterDC's per-seed metrics from a benchmarks/routerdc_split2.py summary.json, if given
    or found (the newest with 3 or more seeds)."""
    if path:
        return json.loads(Path(path).read_text())["runs"]
    found = sorted((REPO / "outputs" / "benchmarks" / "routerdc_split2").glob("*/summary.json"),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for p in found:
        runs = json.loads(p.read_text())["runs"]
        if len(runs) >= 3 and not json.loads(p.read_text())["args"].get("overrides"):
            return runs
    return []


def table(by_loss: dict[str, list[dict]], routerdc: list[dict]) -> str:
    losses = list(by_loss)
    head = ["dataset"] + [f"RankRouter {l.upper()}" for l in losses] + (["RouterDC"] if routerdc else []) + [
        "best single", "per-task best", "oracle"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    first = next(iter(by_loss.values()))[0]
    for key, label in ORDER:
        k = f"{key}/router/acc_predict"
        if k not in first:
            continue
        cells = [mean_std([100 * r[k] for r in by_loss[l]]) for l in losses]
        if routerdc:
            cells.append(mean_std([100 * r[k] for r in routerdc if k in r]))
        cells += [f"{100 * first[f'{key}/{b}/acc_predict']:.2f}" if f"{key}/{b}/acc_predict" in first else ""
                  for b in BASELINES]
        bold = "**" if key.startswith("avg_") else ""
        lines.append(f"| {bold}{label}{bold} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ranking_table(by_loss: dict[str, list[dict]]) -> str:
    lines = ["| loss | val AUC (best ckpt) | best epoch | test AUC, ID avg | test top-1 acc, ID avg | "
             "test selection F1, ID avg | fit s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for loss, runs in by_loss.items():
        ids = [k for k, _ in ORDER[:5]]
        auc = [np.mean([r[f"{d}/router/auc"] for d in ids]) for r in runs]
        top1 = [np.mean([r[f"{d}/router/top1_acc"] for d in ids]) for r in runs]
        f1 = [np.mean([r[f"{d}/router/selection_f1"] for d in ids]) for r in runs]
        lines.append(f"| {loss.upper()} | {np.mean([r['val/score_best'] for r in runs]):.4f} ± "
                     f"{np.std([r['val/score_best'] for r in runs]):.4f} | "
                     f"{', '.join(str(r['best_epoch']) for r in runs)} | {np.mean(auc):.4f} | "
                     f"{100 * np.mean(top1):.2f} | {100 * np.mean(f1):.2f} | "
                     f"{np.mean([r['time/fit_seconds'] for r in runs]):.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--losses", nargs="+", default=["bpr", "bce"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--overrides", nargs="*", default=[])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--routerdc", default=None, help="a routerdc_split2.py summary.json (default: the newest)")
    ap.add_argument("--out", default=str(REPO / "outputs" / "benchmarks" / "rankrouter_split2"))
    ap.add_argument("--tag", default=time.strftime("%Y-%m-%d_%H-%M-%S"))
    args = ap.parse_args()
    out_root = Path(args.out) / args.tag
    jobs = [(loss, s) for loss in args.losses for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda js: run_one(*js, args.overrides, out_root), jobs))
    by_loss = {loss: [m for (l, _), m in zip(jobs, results) if l == loss] for loss in args.losses}
    rdc = routerdc_runs(args.routerdc)
    print(f"\n+experiment=rankrouter_split2 encoder=minilm {' '.join(args.overrides)}; seeds {args.seeds}"
          f"{'; RouterDC: ' + str(len(rdc)) + ' seeds' if rdc else '; RouterDC: no 3-seed summary found'}\n")
    print(table(by_loss, rdc))
    print()
    print(ranking_table(by_loss))
    (out_root / "summary.json").write_text(json.dumps({"args": vars(args), "runs": by_loss}, indent=2))


if __name__ == "__main__":
    main()
