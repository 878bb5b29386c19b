"""Evaluate a trained router checkpoint on any configured data: the same table and metrics.json.

    python -m router_lab.eval ckpt_path=outputs/train/runs/<run>/checkpoints/best.ckpt
    python -m router_lab.eval ckpt_path=... data=split2           # other test data

The router is rebuilt from the checkpoint alone (weights-only loading; its hyper-parameters
are primitive). The data config is the run's own (``<run>/.hydra/config.yaml``) unless a
``data=...`` option is given; either way the test LLM pool must match the router's.
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from router_lab import CONF_DIR
from router_lab.errors import UserError, run_main
from router_lab.train import report

log = logging.getLogger("router_lab.eval")


def load_router(ckpt_path: str | Path, target: str):
    """The LightningModule class ``target`` restored from a checkpoint, weights only."""
    cls = hydra.utils.get_class(target)
    return cls.load_from_checkpoint(str(ckpt_path), map_location="cpu", weights_only=True)


def run_config_for(ckpt_path: Path) -> DictConfig:
    """The saved config of the run a checkpoint belongs to (<run>/checkpoints/x.ckpt)."""
    for parent in ckpt_path.resolve().parents[:3]:
        f = parent / ".hydra" / "config.yaml"
        if f.exists():
            return OmegaConf.load(f)
    raise UserError(f"no .hydra/config.yaml found above {ckpt_path}; expected the checkpoint inside a "
                    "router_lab run dir (<run>/checkpoints/best.ckpt)")


def evaluate_checkpoint(cfg: DictConfig) -> dict:
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise UserError("ckpt_path is not set; expected ckpt_path=outputs/train/runs/<run>/checkpoints/best.ckpt")
    ckpt = Path(str(cfg.ckpt_path))
    if not ckpt.is_file():
        raise UserError(f"ckpt_path={ckpt} does not exist; expected a .ckpt file written by router_lab.train")
    run_cfg = run_config_for(ckpt)
    full = OmegaConf.merge(run_cfg, {"paths": OmegaConf.to_container(cfg.paths, resolve=True)})
    if cfg.get("data") is not None:
        with open_dict(full):
            full.data = cfg.data
    model = load_router(ckpt, full.model._target_)
    dm = hydra.utils.instantiate(full.data, _convert_="all")
    dm.setup("test")
    names = list(model.hparams["data_info"]["llm_names"])
    if dm.test_sets and dm.pool.names and names and dm.pool.names != names:
        raise UserError(f"the router was trained for LLMs {names} but the data's pool is {dm.pool.names}; "
                        "expected test data scored for the same LLMs")
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer)
    trainer.test(model, datamodule=dm, verbose=False)
    return report(dm, model, cfg.paths.output_dir, title=f"{full.model._target_.rsplit('.', 1)[-1]} ({ckpt.name})")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
def main(cfg: DictConfig) -> None:
    from router_lab import console

    console.configure(bool((cfg.get("extras") or {}).get("verbose", False)))
    run_main(evaluate_checkpoint, cfg)


if __name__ == "__main__":
    main()
