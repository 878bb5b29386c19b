"""logger=wandb: offline by default, one group per sweep, each job's run finished, the resolved
config logged without secrets. Reads back what the offline runs wrote locally."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import REPO

from router_lab.wandb_utils import scrub_secrets, wandb_offline_by_default

SECRET = "sk-test-secret-0123456789abcdef"


# The W&B SDK (0.31) reads its transaction logs only in its Go core; this reads one back for the test.
_WANDB_HEADER = 7  # b":W&B" + magic 0xBEE1 (little endian) + version byte
_BLOCK = 32768


def _leveldb_records(data: bytes):
    """Payloads of a W&B transaction log (LevelDB log format: 32 KiB blocks of
    [crc32 u32][length u16][type u8] chunks; FULL=1, FIRST=2, MIDDLE=3, LAST=4)."""
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


def test_offline_unless_a_key_or_online_mode():
    assert wandb_offline_by_default({})
    assert not wandb_offline_by_default({"WANDB_API_KEY": "x" * 40})
    assert wandb_offline_by_default({"WANDB_API_KEY": "x" * 40, "WANDB_MODE": "offline"})
    assert not wandb_offline_by_default({"WANDB_MODE": "online"})


def test_scrub_secrets_by_key_name_and_by_value():
    cfg = {"synth": {"api_key": "abc", "model": "m"}, "notes": f"uses {SECRET}", "hf_token": None, "seed": 1,
           "lst": [SECRET, "ok"]}
    out = scrub_secrets(cfg, secrets=[SECRET])
    assert out == {"synth": {"api_key": "***", "model": "m"}, "notes": "uses ***", "hf_token": None, "seed": 1,
                   "lst": ["***", "ok"]}


def test_wandb_sweep_offline_two_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WANDB_")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GROQ_API_KEY": SECRET,
            "WANDB_DIR": str(tmp_path / "wandb_dir"), "WANDB_CACHE_DIR": str(tmp_path / "wandb_cache"),
            "WANDB_CONFIG_DIR": str(tmp_path / "wandb_config"), "WANDB_SILENT": "true"}
    res = subprocess.run(
        [sys.executable, "-m", "router_lab.train", "-m", "logger=wandb", "+trainer.fast_dev_run=true",
         "data.train.n_train=200", "data.val.n_val=50", "data.test.test.n_test=100", "seed=1,2",
         f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}", "extras.print_config=false",
         # A secret reaching the config: scrubbed by key name and by value.
         "+api_key=${oc.env:GROQ_API_KEY}", "+notes=uses ${oc.env:GROQ_API_KEY}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = []
    for job in ("0", "1"):
        dirs = sorted((sweep / job / "wandb").glob("offline-run-*"))
        assert len(dirs) == 1, f"job {job}: expected one offline run, got {dirs}"
        runs.append(read_offline_run(dirs[0]))
    a, b = runs
    assert a["run"]["group"] == b["run"]["group"] == "train-sweep"  # one group per sweep
    assert a["run"]["id"] != b["run"]["id"] and a["run"]["project"] == "router_lab"
    assert a["exited"] and b["exited"]  # each job finished its run
    assert (a["config"]["seed"], b["config"]["seed"]) == (1, 2)  # no bleeding between jobs
    assert a["config"]["model"]["_target_"].endswith("ClassifierRouter")
    assert a["config"]["api_key"] == "***" and a["config"]["notes"] == "uses ***"
    for r in runs:
        assert 0.0 <= r["summary"]["avg_in_distribution/router/acc_predict"] <= 1.0
    for f in sweep.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f"secret written to {f}"
