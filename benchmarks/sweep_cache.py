"""Wall time of a 2-job sweep with the embedding cache shared between jobs vs one cache per job.

    python benchmarks/sweep_cache.py                    # seed=1,2 on the synthetic benchmark, 2 epochs
    python benchmarks/sweep_cache.py --epochs 20 --launcher local_gpus

Both modes start from an empty cache dir: ``shared`` gives every job the same
``paths.cache_dir`` (job 0 encodes the texts, job 1 reads them back), ``per_job`` gives each
job its own (``.../${hydra:job.num}``), as if the cache were not shared. Prints the sweep's
wall time and each job's encode time (``time/encode_seconds`` in metrics.json).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sweep(mode: str, root: Path, epochs: int, launcher: str) -> dict:
    cache = root / f"cache_{mode}"
    shutil.rmtree(cache, ignore_errors=True)
    cache_arg = f"paths.cache_dir={cache}" if mode == "shared" else f"paths.cache_dir={cache}/${{hydra:job.num}}"
    out = root / f"sweep_{mode}"
    cmd = [sys.executable, "-m", "router_lab.train", "-m", "seed=1,2", "logger=none", f"trainer.max_epochs={epochs}",
           cache_arg, f"hydra.sweep.dir={out}", "extras.print_config=false", f"hydra/launcher={launcher}"]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ROUTER_LAB_NUM_GPUS": "2"}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"error: {mode} sweep failed:\n{res.stderr[-2000:]}")
    jobs = [json.loads((out / j / "metrics.json").read_text()) for j in ("0", "1")]
    return {"mode": mode, "wall_s": wall, "encode_s": [m.get("time/encode_seconds", float("nan")) for m in jobs],
            "fit_s": [m.get("time/fit_seconds", float("nan")) for m in jobs]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--launcher", default="basic", help="basic (jobs one after another) or local_gpus (parallel)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweep_cache_") as tmp:
        rows = [sweep(mode, Path(tmp), args.epochs, args.launcher) for _ in range(args.repeats)
                for mode in ("per_job", "shared")]
    print(f"2-job sweep (seed=1,2), synthetic benchmark (5000 texts), {args.epochs} epochs, launcher={args.launcher}")
    print("| cache | sweep wall (s) | encode job 0 / job 1 (s) | fit job 0 / job 1 (s) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        e, f = r["encode_s"], r["fit_s"]
        print(f"| {r['mode']} | {r['wall_s']:.1f} | {e[0]:.1f} / {e[1]:.1f} | {f[0]:.1f} / {f[1]:.1f} |")


if __name__ == "__main__":
    main()
