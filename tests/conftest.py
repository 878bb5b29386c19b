"""Shared fixtures: tiny random-initialised encoders of every architecture (offline),
small routing data, and the composed Hydra config."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite runs on two pytest-xdist workers (pyproject addopts): one BLAS/OpenMP thread per
# worker and per process it starts, so two workers do not oversubscribe two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
# Where the real data is, as the configs resolve it (paths.data_dir): $ROUTER_LAB_DATA_DIR or
# ../shared/data beside the repo. Tests that need it skip with a reason when it is absent
# (.ci/run runs the suite a second time with ROUTER_LAB_DATA_DIR pointing at an empty dir).
SHARED_DATA = Path(os.environ.get("ROUTER_LAB_DATA_DIR") or REPO.parent / "shared" / "data")

ARCHS = ("bert", "distilbert", "deberta_v2", "qwen2")


def call_cli(capsys, fn, *args) -> tuple[int, str, str]:
    """``fn(list(args))``, an entry point's ``main(argv)``, in this process: (exit status, stdout,
    stderr) of that call alone."""
    capsys.readouterr()
    try:
        fn(list(args))
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _restore_logging():
    """In-process entry points (``main(argv)``) let Hydra configure logging with handlers on
    the test's captured streams: afterwards put every logger's handlers and level back, as a
    new interpreter would have them, so no later test logs to a closed stream."""
    import logging

    loggers = [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                       if isinstance(v, logging.Logger)]
    saved = {lg: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers}
    yield
    for lg in [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                       if isinstance(v, logging.Logger)]:
        handlers, level, propagate, disabled = saved.get(lg, ([], logging.NOTSET, True, False))
        for h in lg.handlers[:]:
            if h not in handlers:
                lg.removeHandler(h)
                h.close()
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate, lg.disabled = propagate, disabled


def make_tiny_encoder(arch: str, out_dir: Path) -> Path:
    """Write a tiny random-initialised model of ``arch`` with a local tokenizer (MiniLM's
    WordPiece vocabulary, so no download) and return its directory."""
    import torch
    from transformers import (AutoModel, BertConfig, BertTokenizerFast, DebertaV2Config, DistilBertConfig,
                              Qwen2Config)

    from router_lab.encoders import minilm_path

    tok = BertTokenizerFast.from_pretrained(minilm_path())
    vocab = tok.vocab_size
    common = dict(vocab_size=vocab, max_position_embeddings=128)
    cfg = {
        "bert": lambda: BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                   **common),
        "distilbert": lambda: DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common),
        "deberta_v2": lambda: DebertaV2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                              intermediate_size=64, relative_attention=True, position_buckets=16,
                                              pos_att_type=["p2c", "c2p"], **common),
        "qwen2": lambda: Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                     intermediate_size=64, **common),
    }[arch]()
    torch.manual_seed(0)
    model = AutoModel.from_config(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory) -> dict[str, Path]:
    """{arch: directory} for every architecture's tiny model."""
    root = tmp_path_factory.mktemp("tiny_encoders")
    return {arch: make_tiny_encoder(arch, root / arch) for arch in ARCHS}


@pytest.fixture(scope="session")
def tiny_bert(tiny_encoders) -> Path:
    return tiny_encoders["bert"]


def compose(overrides: list[str] | None = None, config_name: str = "train", output_dir: str | Path | None = None):
    """The real config, composed once for a test (no Hydra run dir: paths set explicitly)."""
    from hydra import compose as hcompose, initialize_config_dir
    from omegaconf import open_dict

    import router_lab  # noqa: F401  (registers resolvers)
    from router_lab import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hcompose(config_name=config_name, overrides=overrides or [], return_hydra_config=False)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            cfg.paths.work_dir = str(output_dir)
    return cfg


@pytest.fixture
def cfg_factory(tmp_path):
    """compose(...) with outputs and caches under tmp_path, CPU, no logger."""

    def make(overrides: list[str] | None = None, config_name: str = "train"):
        base = [f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", "trainer.accelerator=cpu",
                "extras.print_config=false"]
        return compose(base + list(overrides or []), config_name, output_dir=tmp_path / "run")

    return make


#: hand-built routers over cached embeddings (test_knn, test_mf): a frozen MiniLM and a toy pool's data_info
FROZEN_MINILM = {"name": "minilm", "pretrained": "minilm", "frozen": True, "pooling": "mean", "max_length": 32}


def toy_data_info(n_llms: int = 3, dim: int = 2, costs: list[float] | None = None) -> dict:
    return {"llm_names": [f"llm{i}" for i in range(n_llms)], "llm_costs": costs or [0.0] * n_llms,
            "categories": [], "label_kind": "best_llm", "tasks": ["t"], "embedding_dim": dim,
            "train_mean_scores": [0.5] * n_llms, "has_scores": True}


def route_metrics(out_dir) -> dict:
    """``route mode=evaluate``'s metrics.json (``data/router/<metric>``) by metric name."""
    m = json.loads((out_dir / "metrics.json").read_text())
    assert all(k.startswith("data/router/") for k in m), m
    return {k.removeprefix("data/router/"): v for k, v in m.items()}


def run_failing(cfg, capsys, headline: str = "acc_predict") -> str:
    """train(cfg) through run_main must end in exit 2 with ONE ``error:`` line, no traceback,
    no results table (``headline`` not printed) and no metrics.json; returns the line."""
    from router_lab.errors import run_main
    from router_lab.train import train

    with pytest.raises(SystemExit) as e:
        run_main(train, cfg)
    assert e.value.code == 2
    err = capsys.readouterr()
    errors = [line for line in err.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err.err, err.err[-2000:]
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists() and headline not in err.out
    return errors[0]
