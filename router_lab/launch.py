"""Hydra launcher hooks (``conf/hydra/launcher/*.yaml``).

``OneGpuPerWorker`` is the callback of ``hydra/launcher=local_gpus`` (joblib): each worker
process claims one GPU for its lifetime, so parallel sweep jobs never share a device.
"""
from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from router_lab.errors import UserError

log = logging.getLogger(__name__)

_claimed_slot: tuple[int, Any] | None = None  # (gpu slot, open lock file) held for the process lifetime


class OneGpuPerWorker(Callback):
    """Hydra callback: each sweep worker process claims a free GPU slot (a lock file in the
    sweep dir) and sets CUDA_VISIBLE_DEVICES before CUDA starts; also refuses in-process DDP
    inside a multirun (sweep one job per GPU, or run DDP as a single job)."""

    def __init__(self, num_gpus: int = 1):
        self.num_gpus = int(num_gpus)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _claimed_slot
        trainer = config.get("trainer") or {}
        strategy = str(trainer.get("strategy", "") or "")
        devices = trainer.get("devices", 1)
        if "ddp" in strategy and devices not in (1, "1", [0]) and str(config.hydra.mode) == "RunMode.MULTIRUN":
            raise UserError(f"trainer.strategy={strategy} with trainer.devices={devices} inside a multirun: sweep "
                            "one job per GPU (trainer=gpu) or run trainer=ddp as a single job, not both")
        if self.num_gpus <= 0 or _claimed_slot is not None:
            return
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = visible.split(",") if visible else [str(i) for i in range(self.num_gpus)]
        lock_dir = Path(str(config.hydra.sweep.dir)) / ".gpu_slots"
        lock_dir.mkdir(parents=True, exist_ok=True)
        for slot in range(min(self.num_gpus, len(ids))):
            fh = open(lock_dir / f"{slot}.lock", "w")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            _claimed_slot = (slot, fh)
            os.environ["CUDA_VISIBLE_DEVICES"] = ids[slot]
            log.info("worker %d: GPU %s", os.getpid(), ids[slot])
            return
        raise UserError(f"no free GPU slot of {self.num_gpus} in {lock_dir}: hydra.launcher.n_jobs must not exceed "
                        "ROUTER_LAB_NUM_GPUS")
