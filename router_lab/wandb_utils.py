"""W&B logging and sweep-job hooks.

    python -m router_lab.train logger=wandb                                # offline unless WANDB_API_KEY is set
    python -m router_lab.train -m logger=wandb model=classifier seed=1,2,3 # one W&B group per sweep
    wandb sync outputs/train/runs/<time>/wandb/offline-run-*               # upload an offline run later

``RouterLabWandbLogger`` is Lightning's ``WandbLogger`` with two changes: it runs offline when
no API key is available (so a laptop, CI or a cluster node without network never blocks on a
login prompt), and it scrubs secrets (keys named like ``api_key``/``token``/``secret``/
``password``, or any value equal to a secret environment variable) from the config it logs.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig

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


NAME_SKIP = re.compile(r"^[+~]*(paths\.|extras\.|logger|hydra|callbacks|trainer|tags|task_name)")


def sweep_group_and_name(task_name: str) -> tuple[str | None, str | None]:
    """(group, name) from the Hydra run: the group is ``<task_name>-<sweep dir name>`` for every
    job of a multirun (``<task_name>-<run dir name>`` for a single run); the name is the job's
    overrides that say what it is (no paths, logger, trainer or secret-named keys)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None
    hc = HydraConfig.get()
    multirun = str(hc.mode) == "RunMode.MULTIRUN"
    folder = Path(str(hc.sweep.dir if multirun else hc.runtime.output_dir)).name
    overrides = [o for o in hc.overrides.task if not NAME_SKIP.match(o) and not SECRET_NAME.search(o.split("=")[0])]
    name = ",".join(overrides) or None
    if multirun:
        name = f"{hc.job.num}:{name}" if name else str(hc.job.num)
    return f"{task_name}-{folder}", name


class RouterLabWandbLogger(WandbLogger):
    """``WandbLogger``: offline without an API key; secrets scrubbed from the logged config;
    group and name from the Hydra run when not given (one group per sweep)."""

    def __init__(self, offline: bool | None = None, group: str | None = None, name: str | None = None,
                 task_name: str = "train", **kwargs: Any):
        if offline is None:
            offline = wandb_offline_by_default()
        auto_group, auto_name = sweep_group_and_name(task_name)
        super().__init__(name=name or auto_name, group=group or auto_group, offline=offline, **kwargs)

    def log_hyperparams(self, params: Any) -> None:
        if isinstance(params, DictConfig):
            from omegaconf import OmegaConf

            params = OmegaConf.to_container(params, resolve=True)
        if isinstance(params, Mapping):
            params = scrub_secrets(dict(params))
        super().log_hyperparams(params)
