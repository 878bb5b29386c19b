"""W&B logging and sweep-job hooks.

    python -m router_lab.train logger=wandb                                # offline unless WANDB_API_KEY is set
    python -m router_lab.train -m logger=wandb model=classifier seed=1,2,3 # one W&B group per sweep
    wandb sync outputs/train/runs/<time>/wandb/offline-run-*               # upload an offline run later

``RouterLabWandbLogger`` is Lightning's ``WandbLogger`` with two changes: it runs offline when
no API key is available (so a laptop, CI or a cluster node without network never blocks on a
login prompt), and it scrubs secrets (keys named like ``api_key``/``token``/``secret``/
``password``, or any value equal to a secret environment variable) from the config it logs.

``OneGpuPerWorker`` is a Hydra callback used by ``hydra/launcher=joblib``: each worker process
claims one GPU for its lifetime, so parallel sweep jobs never share a device.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping

from hydra.experimental.callback import Callback
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

from router_lab.errors import UserError

log = logging.getLogger(__name__)

SECRET_NAME = re.compile(r"(api[_-]?key|token|secret|passw(or)?d|credential|auth)", re.IGNORECASE)
REDACTED = "***"


def wandb_offline_by_default(env: Mapping[str, str] | None = None) -> bool:
    """Offline unless an API key is set or WANDB_MODE asks for online."""
    env = os.environ if env is None else env
    mode = env.get("WANDB_MODE", "").lower()
    if mode in ("offline", "dryrun"):
        return True
    if mode == "online":
        return False
    return not env.get("WANDB_API_KEY")


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret (long enough to match safely)."""
    env = os.environ if env is None else env
    return [v for k, v in env.items() if SECRET_NAME.search(k) and v and len(v) >= 8]


def scrub_secrets(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of ``obj`` (nested dicts/lists) with secret-named keys and secret values redacted."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(obj, Mapping):
        return {k: (REDACTED if SECRET_NAME.search(str(k)) and obj[k] not in (None, "") else scrub_secrets(v, secrets))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub_secrets(v, secrets) for v in obj]
    if isinstance(obj, str):
        for s in secrets:
            if s in obj:
                obj = obj.replace(s, REDACTED)
    return obj


class RouterLabWandbLogger(WandbLogger):
    """``WandbLogger``: offline without an API key; secrets scrubbed from the logged config."""

    def __init__(self, offline: bool | None = None, name: str | None = None, **kwargs: Any):
        if offline is None:
            offline = wandb_offline_by_default()
        super().__init__(name=name or None, offline=offline, **kwargs)

    def log_hyperparams(self, params: Any) -> None:
        if isinstance(params, DictConfig):
            from omegaconf import OmegaConf

            params = OmegaConf.to_container(params, resolve=True)
        if isinstance(params, Mapping):
            params = scrub_secrets(dict(params))
        super().log_hyperparams(params)


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
