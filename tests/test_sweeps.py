"""Sweeps: a 2-job multirun through the joblib launcher (fast_dev_run, CPU), a 2-trial Optuna
search, the search spaces of every router family, bad overrides and the DDP-in-multirun guard."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import REPO, compose

TINY = ["data.train.n_train=200", "data.val.n_val=50", "data.test.test.n_test=100"]


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One embedding cache for the whole session: tests share encoded texts, as sweep jobs do."""
    return tmp_path_factory.mktemp("sweep_cache")


def run_train(args: list[str], env_extra: dict | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline",
                        "TOKENIZERS_PARALLELISM": "false"} | (env_extra or {})
    return subprocess.run([sys.executable, "-m", "router_lab.train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_two_job_multirun_joblib_fast_dev_run(tmp_path, shared_cache):
    sweep = tmp_path / "sweep"
    res = run_train(["-m", "hydra/launcher=local_gpus", "debug=fast_dev_run", "seed=1,2", *TINY,
                     f"paths.cache_dir={shared_cache}", f"hydra.sweep.dir={sweep}", "extras.print_config=false"],
                    env_extra={"ROUTER_LAB_NUM_GPUS": "1"})  # one worker: 2 cores are shared
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    seeds = []
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert "avg_in_distribution/router/acc_predict" in metrics
        seeds.append(yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["seed"])
    assert sorted(seeds) == [1, 2]
    # Each worker claimed a GPU slot (CUDA_VISIBLE_DEVICES) through the launcher's callback.
    assert list((sweep / ".gpu_slots").glob("*.lock"))


def test_optuna_two_trials(tmp_path, shared_cache):
    sweep = tmp_path / "optuna"
    res = run_train(["+hparams_search=classifier_optuna", "hydra.sweeper.n_trials=2",
                     "hydra.sweeper.sampler.n_startup_trials=2", "debug=limit", "logger=none", *TINY,
                     f"paths.cache_dir={shared_cache}", f"hydra.sweep.dir={sweep}", "extras.print_config=false"])
    assert res.returncode == 0, res.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna"
    assert isinstance(result["best_value"], float) and 0.0 <= result["best_value"] <= 1.0
    assert set(result["best_params"]) >= {"model.head_lr", "model.hidden_dim"}
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert len(trials) == 2 and all((t / "metrics.json").is_file() for t in trials)


def families() -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))


@pytest.mark.parametrize("family", families())
def test_search_space_of_every_family_names_real_keys(family):
    """The family's own search space (hparams_search/<family>_optuna) or the generic one: every
    parameter it samples is a key of that family's model config."""
    name = f"{family}_optuna" if (REPO / "conf" / "hparams_search" / f"{family}_optuna.yaml").is_file() else "optuna"
    from hydra import compose as hcompose, initialize_config_dir

    from router_lab import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hcompose("train", overrides=[f"model={family}", f"+hparams_search={name}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params, f"hparams_search/{name} has no params"
    missing = [k for k in params if OmegaConf.select(cfg, k, default="<missing>") == "<missing>"]
    assert not missing, (f"hparams_search/{name} samples {missing}, not keys of model={family}; "
                         f"add conf/hparams_search/{family}_optuna.yaml")
    assert cfg.optimized_metric == "val/score_best"


def test_launcher_configs_compose():
    from hydra import compose as hcompose, initialize_config_dir

    from router_lab import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        local = hcompose("train", overrides=["hydra/launcher=local_gpus"], return_hydra_config=True)
        slurm = hcompose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert local.hydra.launcher._target_.endswith("JoblibLauncher")
    assert "one_gpu_per_worker" in local.hydra.callbacks
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher")
    assert slurm.hydra.launcher.gpus_per_node == 1 and slurm.hydra.launcher.tasks_per_node == 1


def test_unknown_config_group_in_a_sweep_is_one_line_and_launches_nothing(tmp_path):
    check = subprocess.run([sys.executable, "experiments/check_overrides.py", "-m", "modle=classifier", "seed=1,2"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.returncode == 2
    lines = check.stderr.strip().splitlines()
    assert len(lines) == 1 and "'modle' is not a config group" in lines[0], check.stderr
    check = subprocess.run([sys.executable, "experiments/check_overrides.py", "model=classifier,nope"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert check.returncode == 2 and "no conf/model/nope.yaml" in check.stderr
    # Hydra itself refuses before any job dir exists.
    res = run_train(["-m", "modle=classifier", "seed=1,2", f"hydra.sweep.dir={tmp_path / 'bad'}"], timeout=60)
    assert res.returncode != 0 and not (tmp_path / "bad").exists()


def test_ddp_inside_a_multirun_is_refused():
    from router_lab.errors import UserError
    from router_lab.launch import OneGpuPerWorker

    cfg = OmegaConf.create({"trainer": {"strategy": "ddp", "devices": -1},
                            "hydra": {"mode": "RunMode.MULTIRUN", "sweep": {"dir": "/nonexistent"}}})
    with pytest.raises(UserError, match="inside a multirun"):
        OneGpuPerWorker(num_gpus=2).on_job_start(config=cfg)


def test_ddp_config_is_a_single_run():
    cfg = compose(["trainer=ddp"])
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == -1
