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


# --------------------------------------------------------------------------- reading offline runs
_WANDB_HEADER = 7  # b":W&B" + magic 0xBEE1 (little endian) + version byte
_BLOCK = 32768


def _leveldb_records(data: bytes):
    """Payloads of a W&B transaction log (LevelDB log format: 32 KiB blocks of
    [crc32 u32][length u16][type u8] chunks; FULL=1, FIRST=2, MIDDLE=3, LAST=4)."""
    import struct

    if data[:4] != b":W&B":
        raise ValueError("not a W&B transaction log (no ':W&B' header)")
    pos, parts = _WANDB_HEADER, []
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            parts = [chunk]
        elif kind == 3:
            parts.append(chunk)
        elif kind == 4:
            parts.append(chunk)
            yield b"".join(parts)
            parts = []


def read_offline_run(run_dir: str | Path) -> dict:
    """What an offline run recorded, read back from its ``run-*.wandb`` file:
    {run: {id, project, group, name, job_type, tags}, config, history: [..], summary, exited}."""
    import json

    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no run-*.wandb file (expected a wandb/offline-run-* dir)")
    out: dict[str, Any] = {"run": {}, "config": {}, "history": [], "summary": {}, "exited": False}

    def key(item) -> str:
        return item.key or "/".join(item.nested_key)

    for payload in _leveldb_records(files[0].read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(payload)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out["run"] = {"id": r.run_id, "project": r.project, "group": r.run_group, "name": r.display_name,
                          "job_type": r.job_type, "tags": list(r.tags)}
            for item in r.config.update:
                out["config"][key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][key(item)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            out["exited"] = True
    for row in out["history"]:
        out["summary"].update({k: v for k, v in row.items() if not k.startswith("_")})
    return out
