"""Train a router, test its best checkpoint on every test set, print it against baselines.

    python -m router_lab.train                                   # classifier router, synthetic benchmark, MiniLM
    python -m router_lab.train +experiment=routerdc_split2       # RouterDC, split2 protocol
    python -m router_lab.train -m model=classifier,routerdc seed=1,2,3   # a sweep
    python -m router_lab.train debug=fast_dev_run                # one batch of everything

Writes into the run dir (``outputs/<task_name>/runs/<time>/``): ``.hydra/`` (the resolved
config), ``checkpoints/best.ckpt``, the logger's files and what ``router_lab.results`` writes
for the tested router (``metrics.json`` last, ``results.md``, ``predictions.jsonl``).
"""
from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig, OmegaConf

from router_lab.config_schema import TrainConfig
from router_lab.errors import UserError, hydra_cli, run_main
from router_lab.results import decide_test_sets, report_run
from router_lab.runs import check_checkpoint

log = logging.getLogger("router_lab.train")


def instantiate_list(cfg: DictConfig | None) -> list:
    """Callbacks/loggers: every entry of the group that has a ``_target_``."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def save_splits(dm, out_dir: Path, which) -> list[Path]:
    """The run's held-out records as record JSONL (``<run>/val.jsonl``, ``<run>/test.jsonl``:
    every test set, each record keeps its task), the table format ``route mode=evaluate`` and
    ``calibrate`` read: calibrate on val, evaluate on test."""
    from router_lab.data.loaders.saved import save_records_jsonl

    written = []
    for name in which:
        if name == "test":
            records = [r for s in dm.test_sets.values() for r in s.records]
        else:
            records = getattr(dm, f"{name}_set").records
        written.append(save_records_jsonl(records, Path(out_dir) / f"{name}.jsonl"))
    if written:
        log.info("held-out records: %s", ", ".join(str(p) for p in written))
    return written


def build_datamodule(cfg: DictConfig):
    """The data module of a composed config, built the one way every entry point builds it
    (``train`` here, the in-process benchmarks, the sweep scripts' pre-flight check)."""
    return hydra.utils.instantiate(cfg.data, _convert_="all")


def train(cfg: DictConfig) -> tuple[dict, dict]:
    """Fit, test the best checkpoint, report. Returns (metrics, objects)."""
    splits = list(cfg.get("extras", {}).get("save_splits") or [])
    unknown = [s for s in splits if s not in ("train", "val", "test")]
    if unknown:
        raise UserError(f"extras.save_splits names {unknown}; expected some of ['train', 'val', 'test']")
    if cfg.get("seed") is not None:
        L.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(cfg.paths.output_dir)
    # Resume: a local checkpoint, checked weights-only before anything else runs (and loaded
    # weights-only by Lightning below); Lightning's own names (last, hpc, ...) pass through.
    resume = cfg.get("ckpt_path")
    if resume and str(resume) not in ("last", "best", "hpc", "registry"):
        resume = str(check_checkpoint(resume))

    dm = build_datamodule(cfg)
    t0 = time.perf_counter()
    dm.setup("fit")
    data_seconds = time.perf_counter() - t0
    if cfg.get("two_model"):  # checked before training, not after
        from router_lab.two_model import check_spec

        check_spec(cfg.two_model, dm.pool.names)

    model = hydra.utils.instantiate(cfg.model, data_info=dm.info(), _convert_="all")
    loggers = instantiate_list(cfg.get("logger"))
    callbacks = instantiate_list(cfg.get("callbacks"))
    if not loggers:  # nothing to monitor the learning rate into
        callbacks = [c for c in callbacks if type(c).__name__ != "LearningRateMonitor"]
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    objects = {"cfg": cfg, "datamodule": dm, "model": model, "trainer": trainer, "callbacks": callbacks,
               "loggers": loggers}
    t1 = time.perf_counter()
    if cfg.get("train", True):
        trainer.fit(model, datamodule=dm, ckpt_path=resume, weights_only=True)
    fit_seconds = time.perf_counter() - t1

    extra: dict[str, float] = {"time/data_seconds": data_seconds, "time/fit_seconds": fit_seconds}
    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None and ckpt_cb.best_model_path else None
    if ckpt_cb is not None and ckpt_cb.best_model_score is not None:
        extra["val/score_best"] = float(ckpt_cb.best_model_score)
    elif "val/score" in trainer.callback_metrics:
        extra["val/score_best"] = float(trainer.callback_metrics["val/score"])

    metrics: dict = {}
    if cfg.get("test", True):
        outputs = decide_test_sets(trainer, model, dm, ckpt_path=best)  # weights-only: no code runs on load
        if dm.encode_stats:  # train/val at setup, test sets when first tested
            extra["time/encode_seconds"] = float(dm.encode_stats.get("seconds", 0.0))
        two = cfg.get("two_model")
        metrics = report_run(dm, outputs, out_dir, extra, two_model=OmegaConf.to_container(two) if two else None)
        for lg in loggers:
            lg.log_metrics({k: v for k, v in metrics.items()})
    save_splits(dm, out_dir, splits)
    for lg in loggers:
        lg.finalize("success")
    if best:
        log.info("best checkpoint: %s", best)
    log.info("metrics: %s", out_dir / "metrics.json")
    return metrics, objects


def describe_run(cfg: DictConfig) -> str:
    """One line: which router, data and encoder run (the choices and overrides of this job)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        choices = {k: hc.runtime.choices.get(k) for k in ("model", "data", "encoder")}
        overrides = [o for o in hc.overrides.task if o.split("=", 1)[0].lstrip("+~") not in (*choices, "seed")]
    except Exception:  # not under @hydra.main (tests call train() directly)
        choices, overrides = {}, []
    head = " ".join(f"{k}={v}" for k, v in choices.items() if v)
    return f"{cfg.get('task_name', 'train')}: {head} seed={cfg.get('seed')}" + (f" {' '.join(overrides)}" if overrides
                                                                           else "")


@hydra_cli("train", schema=TrainConfig)
def main(cfg: DictConfig) -> float | None:
    from router_lab import console

    extras = cfg.get("extras", {}) or {}
    console.configure(bool(extras.get("verbose", False)))
    if extras.get("ignore_warnings"):
        warnings.filterwarnings("ignore")
    log.info("%s -> %s", describe_run(cfg), cfg.paths.output_dir)
    if extras.get("print_config"):
        log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=False))
    metrics, objects = run_main(train, cfg)
    # Each sweep job closes its W&B run before the next starts.
    for lg in objects.get("loggers", []):
        exp = getattr(lg, "_experiment", None)
        if exp is not None and hasattr(exp, "finish"):
            exp.finish()
    key = cfg.get("optimized_metric")
    return metrics.get(key) if key else None


if __name__ == "__main__":
    main()
