"""The default run end to end, cold (empty embedding cache) and warm: wall time and the
router against the baselines.

    python benchmarks/default_run.py
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from _common import machine, train_run

tmp = Path(tempfile.mkdtemp(prefix="router_lab_default_"))
cache = tmp / "cache"
print(f"machine: {machine()}")
cold, metrics, stdout = train_run([], tmp / "cold", env={"ROUTER_LAB_CACHE_DIR": str(cache)})
warm, _, _ = train_run([], tmp / "warm", env={"ROUTER_LAB_CACHE_DIR": str(cache)})
table = stdout[stdout.index("router vs baselines"):].split("\n\n")[0]
print(table)
print(f"wall time, cold cache (encodes every query): {cold:.1f} s")
print(f"wall time, warm cache:                      {warm:.1f} s")
print(f"encoding time inside the cold run:          {metrics['time/encode_seconds']:.1f} s")
for g in ("avg_in_distribution", "avg_out_of_distribution"):
    row = {m: 100 * metrics[f"{g}/{m}/acc_predict"] for m in ("router", "random", "best_single", "best_per_task", "oracle")}
    print(g, "  ".join(f"{k} {v:.2f}" for k, v in row.items()))
shutil.rmtree(tmp, ignore_errors=True)
