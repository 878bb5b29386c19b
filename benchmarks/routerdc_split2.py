"""RouterDC on split2 over several seeds: mean ± std of acc_predict per dataset, next to the
baselines, in the paper's order.

    python benchmarks/routerdc_split2.py                                   # frozen MiniLM, seeds 0 1 2
    python benchmarks/routerdc_split2.py --experiment routerdc_split2 --overrides encoder=minilm \
        encoder.frozen=false trainer.max_steps=200                        # fine-tuned (reduced)
    python benchmarks/routerdc_split2.py --overrides model.temperature=0.1 --seeds 0
    python benchmarks/routerdc_split2.py --tag T --seeds 1 & python benchmarks/routerdc_split2.py --tag T --seeds 2
    python benchmarks/routerdc_split2.py --tag T --reuse          # seeds in parallel, then the table

Each seed is one `python -m router_lab.train +experiment=...` subprocess; its metrics.json is
read back. Prints a markdown table (paste into benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ORDER = [("mmlu", "MMLU"), ("gsm8k", "GSM8K"), ("cmmlu", "CMMLU"), ("arc_challenge", "ARC-C"),
         ("humaneval", "HumanEval"), ("MATH_prealgebra", "PreAlgebra"), ("mbpp", "MBPP"), ("ceval", "C-EVAL"),
         ("avg_in_distribution", "ID avg"), ("avg_out_of_distribution", "OOD avg"), ("javascript", "JavaScript")]
BASELINES = ["best_single", "best_per_task", "oracle"]


def run_seed(experiment: str, seed: int, overrides: list[str], out_root: Path, reuse: bool = False) -> dict:
    run_dir = out_root / f"seed{seed}"
    if reuse and (run_dir / "metrics.json").exists():  # a finished run (metrics.json is written last)
        return json.loads((run_dir / "metrics.json").read_text()) | {"time/wall_seconds": float("nan")}
    cmd = [sys.executable, "-m", "router_lab.train", f"+experiment={experiment}", f"seed={seed}", "logger=none",
           "extras.print_config=false", f"hydra.run.dir={run_dir}", *overrides]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"seed {seed} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
    m = json.loads((run_dir / "metrics.json").read_text())
    m["time/wall_seconds"] = time.perf_counter() - t0
    return m


def table(runs: list[dict]) -> str:
    head = "| dataset | router acc_predict (mean ± std) | router acc | best single | per-task best | oracle |"
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    for key, label in ORDER:
        vals = [100 * r[f"{key}/router/acc_predict"] for r in runs if f"{key}/router/acc_predict" in r]
        accs = [100 * r[f"{key}/router/acc"] for r in runs if f"{key}/router/acc" in r]
        if not vals:
            continue
        base = [runs[0].get(f"{key}/{b}/acc_predict") for b in BASELINES]
        cells = [f"{np.mean(vals):.2f} ± {np.std(vals):.2f}", f"{np.mean(accs):.2f}"]
        cells += ["" if b is None else f"{100 * b:.2f}" for b in base]
        bold = "**" if key.startswith("avg_") else ""
        lines.append(f"| {bold}{label}{bold} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default="routerdc_split2_minilm")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--overrides", nargs="*", default=[])
    ap.add_argument("--out", default=str(REPO / "outputs" / "benchmarks" / "routerdc_split2"))
    ap.add_argument("--tag", default=time.strftime("%Y-%m-%d_%H-%M-%S"))
    ap.add_argument("--reuse", action="store_true", help="read seeds already finished under --tag instead of rerunning")
    args = ap.parse_args()
    out_root = Path(args.out) / args.tag
    runs = []
    for s in args.seeds:
        runs.append(run_seed(args.experiment, s, args.overrides, out_root, args.reuse))
        m = runs[-1]
        print(f"seed {s}: ID {100 * m['avg_in_distribution/router/acc_predict']:.2f}  "
              f"OOD {100 * m['avg_out_of_distribution/router/acc_predict']:.2f}  "
              f"({m['time/wall_seconds']:.0f} s, fit {m['time/fit_seconds']:.0f} s)", flush=True)
    print(f"\n+experiment={args.experiment} {' '.join(args.overrides)}; seeds {args.seeds}\n")
    print(table(runs))
    (out_root / "summary.json").write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
