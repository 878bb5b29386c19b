"""CLINC150 label routers with an out-of-scope threshold: in-scope accuracy and out-of-scope
recall on held-out data, the threshold chosen on validation data only.

    python benchmarks/clinc150_oos.py                      # intent and domain, target recalls 0.5 0.75 0.9
    python benchmarks/clinc150_oos.py intent 0.9           # one label set, one target recall
    python benchmarks/clinc150_oos.py domain epochs=12     # at most 12 training epochs (default 30)

Needs ``<data_dir>/clinc150/`` (the ``data_full`` train/val/oos_train/oos_val file). Its
test split is not there, so the held-out test is built from what is:

- train: ``train`` minus a seeded 20 % carved out per domain (``data.test=null``: the
  datamodule's stratified split), frozen MiniLM, 512-unit head, <= 30 epochs (``epochs=N``),
  early stopping (patience 5) and checkpoint selection on ``val``;
- threshold: ``python -m router_lab.calibrate ... target_oos_recall=R`` on ``val`` + ``oos_val``
  (the clinc150 loader with ``include_oos``) for the highest target R; the other targets' thresholds
  come from the same validation curve (``calibration.json``, ``calibrate.choose_threshold``);
- held-out test (never looked at while choosing anything): the carved 20 % of ``train``
  (in scope, 3000 queries, read back from the run's ``predictions.jsonl``) + ``oos_train``
  (100 out-of-scope queries; the threshold router never trains on out-of-scope data):
  ``python -m router_lab.route mode=evaluate`` with the calibrated router, and every target's
  threshold applied to one routing pass of the test set (``calibrate.threshold_sweep``).

CLIs run in subprocesses; runs and reports go under ``outputs/benchmarks/clinc150_oos/`` (a
finished training run is reused).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import REPO, machine, train_run

args_ = sys.argv[1:]
labels = [a for a in args_ if a in ("domain", "intent")] or ["intent", "domain"]
targets = [float(a) for a in args_ if a.replace(".", "", 1).isdigit()] or [0.5, 0.75, 0.9]
epochs = next((int(a.split("=", 1)[1]) for a in args_ if a.startswith("epochs=")), 30)
data_dir = Path(os.environ.get("ROUTER_LAB_DATA_DIR", REPO.parent / "shared" / "data"))
clinc = data_dir / "clinc150" / "clinc150_train_val.json"
if not clinc.is_file():
    sys.exit(f"error: {clinc} not found; expected CLINC150's clinc150_train_val.json (set ROUTER_LAB_DATA_DIR)")
root = REPO / "outputs" / "benchmarks" / "clinc150_oos"
env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def cli(module: str, *args: str) -> str:
    p = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{module} {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return p.stdout


print(f"machine: {machine()}")
sys.path.insert(0, str(REPO))
from router_lab.api import Router  # noqa: E402
from router_lab.calibrate import choose_threshold, threshold_sweep  # noqa: E402
from router_lab.data.loaders.clinc150 import load_clinc150  # noqa: E402
from router_lab.data.loaders.saved import save_records_jsonl  # noqa: E402
from router_lab.data.records import RoutingRecord  # noqa: E402

rows = []
for label in labels:
    out = root / label
    run = out / "run"
    if (run / "metrics.json").is_file():
        print(f"{label}: reusing the finished run {run}")
    else:
        wall, _, _ = train_run(
            ["data=clinc150", "data.test=null", f"data.source.label={label}",
             # checkpoints on the file's val split (the threshold is chosen there too); the
             # held-out test is carved from train (data.test=null) + oos_train
             "data.val={loader: clinc150, path: '${paths.data_dir}/clinc150/clinc150_train_val.json', split: val, "
             f"label: {label}}}",
             "logger=none", f"trainer.max_epochs={epochs}", "callbacks.early_stopping.patience=5", "model.hidden_dim=512"],
            run)
        print(f"{label}: trained in {wall:.0f} s", flush=True)
    train_m = json.loads((run / "metrics.json").read_text())
    export = out / "export"
    cli("router_lab.export", f"ckpt_path={run}", f"out={export}", "overwrite=true")

    # The held-out test: the run's carved part of train (in scope) + oos_train (out of scope).
    preds = [json.loads(l) for l in (run / "predictions.jsonl").read_text().splitlines() if l.strip()]
    in_scope = [RoutingRecord(id=p["id"], query=p["text"], task=p["task"], label=p["label"]) for p in preds]
    oos = load_clinc150(clinc, split="oos_train", label=label, include_oos=True)
    test_file = save_records_jsonl(in_scope + oos, out / "heldout_test.jsonl")
    print(f"{label}: held-out test {len(in_scope)} in scope + {len(oos)} out of scope -> {test_file}", flush=True)

    t0 = time.perf_counter()
    cal = cli("router_lab.calibrate", f"router={export}", f"input={clinc}", "loader=clinc150", "loader.split=val",
              f"loader.label={label}", "loader.include_oos=true", f"target_oos_recall={max(targets)}")
    print(f"{label}: calibrated on val + oos_val in {time.perf_counter() - t0:.0f} s: {cal.splitlines()[0]}", flush=True)
    val_curve = json.loads((export / "calibration.json").read_text())["curve"]
    ev_dir = out / "eval"
    cli("router_lab.route", f"router={export}", "mode=evaluate", f"input={test_file}", "loader=records", f"out={ev_dir}")
    ev = {k.removeprefix("data/router/"): v for k, v in json.loads((ev_dir / "metrics.json").read_text()).items()}

    router = Router.load(export)
    chosen = {r: choose_threshold(val_curve, r) for r in sorted(targets)}
    test = threshold_sweep(router, in_scope + oos, thresholds=[0.0, *(p["threshold"] for p in chosen.values())])
    # the CLI's evaluate (calibrated router) and the sweep (same threshold) agree
    assert abs(test[-1]["oos_recall"] - ev["oos_recall"]) < 1e-6, (test[-1], ev)
    assert abs(test[-1]["in_scope_accuracy"] - ev["in_scope_accuracy"]) < 1e-6, (test[-1], ev)
    rows.append((label, "none", 0.0, val_curve[0]["in_scope_accuracy"], val_curve[0]["oos_recall"],
                 test[0]["in_scope_accuracy"], test[0]["oos_recall"]))
    for (r, v), t in zip(chosen.items(), test[1:]):
        rows.append((label, f"{r:g}", v["threshold"], v["in_scope_accuracy"], v["oos_recall"],
                     t["in_scope_accuracy"], t["oos_recall"]))
    print(f"{label}: test top-1 accuracy (in scope, no threshold): route evaluate {100 * ev['accuracy']:.2f} %, "
          f"the training run's own test report {100 * train_m['test/router/accuracy']:.2f} %", flush=True)

print("\n| labels | target OOS recall (val) | threshold | val in-scope acc (%) | val OOS recall (%) "
      "| test in-scope acc (%) | test OOS recall (%) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r[0]} ({150 if r[0] == 'intent' else 10}) | {r[1]} | {r[2]:.4f} | {100 * r[3]:.2f} | {100 * r[4]:.2f} "
          f"| {100 * r[5]:.2f} | {100 * r[6]:.2f} |")
