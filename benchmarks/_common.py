"""Helpers shared by the benchmark scripts: run the real entry point, read its metrics."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU, Python {platform.python_version()}"


def compose(overrides: list[str], run_dir: Path):
    """The real config (as ``python -m router_lab.train`` composes it), run dir set: for
    benchmarks that call ``router_lab.train.train`` in-process."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from omegaconf import open_dict

    from router_lab import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hcompose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        cfg.paths.work_dir = str(run_dir)
    return cfg


def train_run(args: list[str], run_dir: Path, env: dict | None = None, module: str = "router_lab.train"):
    """Run ``python -m router_lab.train`` in a subprocess; (wall seconds, metrics, stdout)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", module, *args, f"hydra.run.dir={run_dir}", "extras.print_config=false"],
                       cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, capture_output=True,
                       text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"run failed ({p.returncode}): {p.stderr[-2000:]}")
    return wall, json.loads((run_dir / "metrics.json").read_text()), p.stdout
