"""Every notebook in notebooks/ runs headless top to bottom (nbclient) on small data, and is
committed without outputs.

Small-data contract for notebooks (see docs/experiments.md): ROUTER_LAB_REPORT_DIR (a report
made from two tiny runs), ROUTER_LAB_CACHE_DIR (a session cache), ROUTER_LAB_NOTEBOOK_ROWS,
CLUSTER_NB_SAMPLE; a notebook whose kernel or declared modules
(metadata.router_lab.requires) are missing is skipped with the reason.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def small_report(tmp_path_factory) -> tuple[Path, Path]:
    from test_report import make_small_runs

    root = tmp_path_factory.mktemp("nb_runs")
    sweep = make_small_runs(root)
    out = root / "report"
    res = subprocess.run([sys.executable, "-m", "router_lab.report", f"roots={sweep}", f"out={out}"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return out, root / "cache"


def missing_deps(nb) -> str | None:
    from jupyter_client.kernelspec import KernelSpecManager

    kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
    if kernel not in KernelSpecManager().find_kernel_specs():
        return f"kernel {kernel!r} is not installed"
    for mod in nb.metadata.get("router_lab", {}).get("requires", []):
        if importlib.util.find_spec(mod) is None:
            return f"module {mod!r} is not installed"
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_headless(path, small_report, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    reason = missing_deps(nb)
    if reason:
        pytest.skip(f"{path.name}: {reason}")
    report_dir, cache = small_report
    for k, v in {"ROUTER_LAB_REPORT_DIR": str(report_dir), "ROUTER_LAB_CACHE_DIR": str(cache),
                 "ROUTER_LAB_NOTEBOOK_ROWS": "5", "CLUSTER_NB_SAMPLE": "40", "MPLBACKEND": "Agg",
                 "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                 "WANDB_MODE": "offline", "ROUTER_LAB_NOTEBOOK_OUT": str(tmp_path)}.items():
        monkeypatch.setenv(k, v)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name=nb.metadata.get("kernelspec", {}).get("name",
                                     "python3"), resources={"metadata": {"path": str(REPO)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} have outputs; strip them: "
                       f"python experiments/strip_notebooks.py {path.relative_to(REPO)}")
