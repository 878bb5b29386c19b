"""The default run end to end, cold (empty embedding cache) and warm: wall time, the
encoding time inside the cold run, and the router against the baselines.

    python benchmarks/default_run.py            # 1 cold run, then 3 warm runs (median)

Prints the machine and its load average before and after (other work on the cores inflates
the wall times).
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path

from _common import machine, train_run

tmp = Path(tempfile.mkdtemp(prefix="router_lab_default_"))
cache = tmp / "cache"
print(f"machine: {machine()}; load average (1/5/15 min) before: {os.getloadavg()}")
cold, metrics, stdout = train_run([], tmp / "cold", env={"ROUTER_LAB_CACHE_DIR": str(cache)})
warm = [train_run([], tmp / f"warm{i}", env={"ROUTER_LAB_CACHE_DIR": str(cache)})[0] for i in range(3)]
table = stdout[stdout.index("router vs baselines"):].split("\n\n")[0]
print(table)
print(f"wall time, cold cache (encodes every query): {cold:.1f} s")
print(f"encoding time inside the cold run:          {metrics['time/encode_seconds']:.1f} s")
print(f"wall time, warm cache (median of 3):        {statistics.median(warm):.1f} s  (runs: "
      + ", ".join(f"{w:.1f}" for w in warm) + ")")
for g in ("avg_in_distribution", "avg_out_of_distribution"):
    row = {m: 100 * metrics[f"{g}/{m}/acc_predict"] for m in ("router", "random", "best_single", "best_per_task", "oracle")}
    print(g, "  ".join(f"{k} {v:.2f}" for k, v in row.items()))
print(f"load average after: {os.getloadavg()}")
shutil.rmtree(tmp, ignore_errors=True)
