"""Evaluate a trained router checkpoint on any configured data: the same table and metrics.json.

    python -m router_lab.eval ckpt_path=outputs/train/runs/<run>/checkpoints/best.ckpt
    python -m router_lab.eval ckpt_path=... data=split2           # other test data

The router is rebuilt from the checkpoint alone (weights-only loading; its hyper-parameters
are primitive). The data config is the run's own (``<run>/.hydra/config.yaml``) unless a
``data=...`` option is given; either way the test LLM pool must match the router's. The run
dir is data (``router_lab.runs``): its config only selects a registered router family and
data module, nothing in it is imported or instantiated by name.
"""
from __future__ import annotations

import logging

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from router_lab.config_schema import EvalConfig
from router_lab.errors import UserError, hydra_cli, run_main
from router_lab.runs import checkpoint_of, load_checkpoint_model, load_run_config, load_run_datamodule
from router_lab.results import decide_test_sets, report_run

log = logging.getLogger("router_lab.eval")


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise UserError("ckpt_path is not set; expected ckpt_path=outputs/train/runs/<run>/checkpoints/best.ckpt")
    ckpt = checkpoint_of(str(cfg.ckpt_path))
    run_cfg, cfg_file = load_run_config(ckpt.parent)
    target = str(run_cfg.model._target_)
    model = load_checkpoint_model(ckpt, target, f"{cfg_file}: model")
    # data=OPTION: the user's own data config (trusted), resolved against the run's encoder / pool
    dm = load_run_datamodule(run_cfg, str(cfg_file), OmegaConf.to_container(cfg.paths, resolve=True),
                             data=cfg.get("data"))
    dm.setup("test")
    names = list(model.hparams["data_info"]["llm_names"])
    if dm.test_sets and dm.pool.names and names and dm.pool.names != names:
        raise UserError(f"the router was trained for LLMs {names} but the data's pool is {dm.pool.names}; "
                        "expected test data scored for the same LLMs")
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer)
    outputs = decide_test_sets(trainer, model, dm)
    return report_run(dm, outputs, cfg.paths.output_dir, title=f"{target.rsplit('.', 1)[-1]} ({ckpt.name})")


@hydra_cli("eval", schema=EvalConfig)
def main(cfg: DictConfig) -> None:
    from router_lab import console

    console.configure(bool((cfg.get("extras") or {}).get("verbose", False)))
    run_main(evaluate_checkpoint, cfg)


if __name__ == "__main__":
    main()
