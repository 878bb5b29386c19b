"""Classifier router on CLINC150 (train -> val of the data_full variant, in-scope only):
accuracy with MiniLM frozen and fine-tuned, for the 10 domains and the 150 intents.

    python benchmarks/clinc150.py                 # all four
    python benchmarks/clinc150.py frozen          # only the frozen runs

Fine-tuning runs `fine_tune_epochs` epochs (default 3) of MiniLM at lr 5e-5 with batch 32.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import machine, train_run

modes = sys.argv[1:] or ["frozen", "finetune"]
tmp = Path(tempfile.mkdtemp(prefix="router_lab_clinc_"))
print(f"machine: {machine()}")
rows = []
for mode in modes:
    for label in ("domain", "intent"):
        args = ["data=clinc150", f"data.train.label={label}", f"data.val.label={label}", f"data.test.val.label={label}",
                "logger=none"]
        if mode == "frozen":
            args += ["trainer.max_epochs=30", "callbacks.early_stopping.patience=5", "model.hidden_dim=512"]
        else:
            args += ["encoder.frozen=false", "encoder.max_length=64", "trainer.max_epochs=3", "model.lr=5e-5",
                     "model.head_lr=1e-3", "model.hidden_dim=0", "data.batch_size=32", "trainer.val_check_interval=0.5"]
        wall, m, _ = train_run(args, tmp / f"{mode}-{label}")
        rows.append((mode, label, 100 * m["val/router/accuracy"], 100 * m["val/router/macro_f1"], wall))
        print(f"{mode:9s} {label:7s} accuracy {rows[-1][2]:.2f}%  macro-F1 {rows[-1][3]:.2f}%  ({wall:.0f} s)", flush=True)
print("\n| encoder mode | labels | accuracy (%) | macro-F1 (%) | wall (s) |\n|---|---|---|---|---|")
for r in rows:
    print(f"| MiniLM {r[0]} | {r[1]} ({10 if r[1] == 'domain' else 150}) | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.0f} |")
