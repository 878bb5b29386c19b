"""Classifier router on CLINC150 (train -> val of the data_full variant, in-scope only):
accuracy with MiniLM frozen and fine-tuned, for the 10 domains and the 150 intents.

    python benchmarks/clinc150.py                 # all four
    python benchmarks/clinc150.py frozen          # only the frozen runs

    python benchmarks/clinc150.py finetune intent # one mode, one label set
    python benchmarks/clinc150.py frozen domain encoder=e5_small seeds=1,2,3   # another encoder, 3 seeds

Protocol (data=clinc150): checkpoint selection on a seeded 10 % of ``train``; the reported
figure is on CLINC's ``val`` split, which nothing in training looks at.

Frozen: a 512-unit MLP head on cached embeddings, up to 30 epochs with early stopping.
Fine-tuning: 3 epochs of MiniLM (encoder lr 1e-4, head lr 2e-3, batch 32, max length 64,
linear warm-up and decay), best epoch on val.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import machine, train_run

args_ = sys.argv[1:]
opts = dict(a.split("=", 1) for a in args_ if "=" in a)
encoder = opts.get("encoder", "minilm")
seeds = [int(x) for x in opts.get("seeds", "").split(",") if x] or [None]
modes = [a for a in args_ if a in ("frozen", "finetune")] or ["frozen", "finetune"]
labels = [a for a in args_ if a in ("domain", "intent")] or ["domain", "intent"]
tmp = Path(tempfile.mkdtemp(prefix="router_lab_clinc_"))
print(f"machine: {machine()}")
rows = []
for mode in modes:
    for label in labels:
        args = ["data=clinc150", f"data.source.label={label}", "logger=none", f"encoder={encoder}"]
        if mode == "frozen":
            args += ["trainer.max_epochs=30", "callbacks.early_stopping.patience=5", "model.hidden_dim=512"]
        else:
            args += ["encoder.frozen=false", "encoder.max_length=64", "trainer.max_epochs=3", "model.lr=1e-4",
                     "model.head_lr=2e-3", "model.hidden_dim=0", "data.batch_size=32"]
        for seed in seeds:
            run_args = args if seed is None else [*args, f"seed={seed}"]
            wall, m, _ = train_run(run_args, tmp / f"{mode}-{label}-{seed}")
            rows.append((mode, label, seed, 100 * m["val/router/accuracy"], 100 * m["val/router/macro_f1"], wall))
            print(f"{encoder} {mode:9s} {label:7s} seed {seed} accuracy {rows[-1][3]:.2f}%  macro-F1 {rows[-1][4]:.2f}%  "
                  f"({wall:.0f} s)", flush=True)
print("\n| encoder mode | labels | seed | accuracy (%) | macro-F1 (%) | wall (s) |\n|---|---|---|---:|---:|---:|")
for r in rows:
    print(f"| {encoder} {r[0]} | {r[1]} ({10 if r[1] == 'domain' else 150}) | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.0f} |")
if len(seeds) > 1:
    import numpy as np

    for mode in modes:
        for label in labels:
            acc = [r[3] for r in rows if r[:2] == (mode, label)]
            print(f"{encoder} {mode} {label}: accuracy {np.mean(acc):.2f} ± {np.std(acc):.2f} over seeds {seeds}")
