"""Callbacks any router can use (``conf/callbacks/*.yaml``).

    python -m router_lab.train                       # writes <run dir>/training_history.json
    python -m router_lab.train callbacks=none        # no callbacks at all

``TrainingHistory`` keeps one entry per validation run during fitting (once per epoch by
default): the epoch, global step, mean training loss since the previous entry, and every
``val/*`` metric the router logged. The file is rewritten atomically after each entry, so
an interrupted run leaves a readable history.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import torch

from router_lab.files import write_atomic


class TrainingHistory(L.Callback):
    def __init__(self, dirpath: str | None = None, filename: str = "training_history.json"):
        """``dirpath``: the run directory (default: the trainer's ``default_root_dir``)."""
        self.dirpath = dirpath
        self.filename = filename
        self.history: list[dict] = []
        self._loss_sum = 0.0
        self._loss_n = 0

    @property
    def path(self) -> Path | None:
        return Path(self.dirpath) / self.filename if self.dirpath else None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = trainer.default_root_dir

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1 and torch.isfinite(loss):
            self._loss_sum += float(loss.detach())
            self._loss_n += 1

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._record(trainer)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self._loss_n:  # training batches after the last validation (or no validation at all)
            self._record(trainer)

    def _record(self, trainer) -> None:
        entry: dict = {"epoch": int(trainer.current_epoch), "step": int(trainer.global_step),
                       "train/loss": self._loss_sum / self._loss_n if self._loss_n else None}
        for k, v in sorted(trainer.callback_metrics.items()):
            if k.startswith("val/") and isinstance(v, torch.Tensor) and v.numel() == 1:
                x = float(v)
                entry[k] = x if math.isfinite(x) else None
        self.history.append(entry)
        self._loss_sum, self._loss_n = 0.0, 0
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"history": self.history}, indent=2))


from hydra.experimental.callback import Callback as _HydraCallback  # noqa: E402


class CheckRunNames(_HydraCallback):
    """Hydra callback (``conf/hydra/default.yaml``): names that become parts of the run dir
    path (``task_name``) are checked before Hydra creates the dir; a bad one is one
    ``error:`` line, exit 2, and nothing is created."""

    def _check(self, config) -> None:
        import sys

        from router_lab.errors import run_main
        from router_lab.files import check_path_part

        run_main(check_path_part, config.get("task_name", ""), "task_name")
        sys.stdout.flush()

    def on_run_start(self, config, **kwargs) -> None:
        self._check(config)

    def on_multirun_start(self, config, **kwargs) -> None:
        self._check(config)
        # a sweep over task_name (task_name=a,b): every value, before any job starts
        from omegaconf import OmegaConf

        overrides = OmegaConf.select(config, "hydra.overrides.task", default=None) or []
        for o in overrides:
            key, _, value = str(o).lstrip("+~").partition("=")
            if key == "task_name":
                for v in value.split(","):
                    self._check({"task_name": v.strip()})
