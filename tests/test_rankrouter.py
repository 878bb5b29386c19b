"""RankRouter: loss of a hand-built batch, cluster features, the towers, configs, and the real
entry point on a small arena-format fixture this file writes (frozen MiniLM), on synthetic data
and with a fine-tuned tiny Qwen2; bad arena input ends in one error line and no result.

    python -m pytest tests/test_rankrouter.py -q
"""
from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, compose, run_failing
from router_lab.errors import UserError
from router_lab.models.rankrouter import RankRouter, cluster_features

MODELS = ["coder-7b", "poet-13b", "mathy-8b", "chatty-3b"]
TOPICS = {"coder-7b": ["write a python function that", "fix this javascript bug in", "sql query joining tables for"],
          "poet-13b": ["write a sonnet about", "compose a haiku on", "a short rhyming poem about"],
          "mathy-8b": ["solve the integral of", "prove that the sum of", "compute the derivative of"],
          "chatty-3b": ["hi there how are you doing", "tell me a fun fact about", "what's your favourite"]}
NOUNS = ["the ocean", "autumn leaves", "a binary tree", "prime numbers", "my cat", "the moon", "coffee", "trains"]


def info(n_llms: int = 3, tasks: int = 2, dim: int = 2) -> dict:
    names = [f"llm{i}" for i in range(n_llms)]
    return {"llm_names": names, "llm_costs": [0.0] * n_llms, "categories": names, "label_kind": "best_llm",
            "tasks": [f"t{i}" for i in range(tasks)], "embedding_dim": dim, "train_mean_scores": [0.5] * n_llms,
            "has_scores": True, "has_cluster_ids": False, "num_clusters": 0,
            "task_mean_scores": [[0.1 * (t + 1) * (i + 1) for i in range(n_llms)] for t in range(tasks)]}


FROZEN = {"name": "cached", "pretrained": "package:minilm", "frozen": True}


def write_arena(path: Path, n: int = 200, seed: int = 0, extra_rows: list[dict] | None = None) -> Path:
    """Battles of 4 models where each topic's specialist beats anyone (the prompt says the
    topic), with 10% ties / bothbad; parquet."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        expert = MODELS[i % 4]
        other = MODELS[(i % 4 + 1 + rng.integers(3)) % 4]
        a, b = (expert, other) if rng.random() < 0.5 else (other, expert)
        u = rng.random()
        winner = "tie" if u < 0.05 else "tie (bothbad)" if u < 0.1 else ("model_a" if a == expert else "model_b")
        prompt = f"{TOPICS[expert][rng.integers(3)]} {NOUNS[rng.integers(len(NOUNS))]} #{i}"
        rows.append({"question_id": f"q{i}", "model_a": a, "model_b": b, "winner": winner, "prompt": prompt})
    rows += extra_rows or []
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path)
    return path


# ---------------------------------------------------------------- pure pieces
def hand_built_router(**kw) -> RankRouter:
    """num_clusters=0, identity query tower, model vectors = the capability rows."""
    m = RankRouter(info(3, tasks=2, dim=2), FROZEN, embedding_dim=2, num_clusters=0, model_id_dim=1, **kw)
    with torch.no_grad():
        m.query_tower[-1].weight.copy_(torch.eye(2))
        m.query_tower[-1].bias.zero_()
        m.capability.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        m.model_tower.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
        m.model_tower.bias.zero_()
    return m.eval()


def test_bpr_loss_of_a_hand_built_batch():
    m = hand_built_router(margin=1.0, tie_mode="skip")
    # query (2, 0): scores 2, 0, 2 for llm0..2; query (0, 1): 0, 1, 1
    batch = {"embedding": torch.tensor([[2.0, 0.0], [0.0, 1.0]]),
             "scores": torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]),
             "score_mask": torch.tensor([[True, True, True], [False, True, True]])}
    logits = m(batch)
    assert logits.tolist() == [[2.0, 0.0, 2.0], [0.0, 1.0, 1.0]]
    loss, n = m.loss_from_logits(logits, batch)
    # row 0: 0>1 gap 2, 0>2 gap 0, 2>1 gap 2; row 1: 1>2 gap 0. -log sigmoid(gap - 1) = log(1 + e^(1 - gap))
    expected = (2 * math.log(1 + math.exp(-1)) + 2 * math.log(1 + math.exp(1))) / 4
    assert n == 4 and loss.item() == pytest.approx(expected, rel=1e-6)


def test_bpr_ties_counted_as_half_and_bce_on_the_same_batch():
    batch = {"embedding": torch.tensor([[2.0, 0.0]]), "scores": torch.tensor([[0.5, 0.5, 0.0]]),
             "score_mask": torch.tensor([[True, True, False]])}
    m = hand_built_router(margin=1.0, tie_mode="half")
    loss, n = m.loss_from_logits(m(batch), batch)
    # one tie, gap 2: 0.5 log(1 + e^(1-2)) + 0.5 log(1 + e^(1+2))
    assert n == 1 and loss.item() == pytest.approx(0.5 * math.log(1 + math.exp(-1)) + 0.5 * math.log(1 + math.exp(3)))
    skipped, n = hand_built_router(tie_mode="skip").loss_from_logits(m(batch), batch)
    assert n == 0 and skipped.item() == 0.0
    bce = hand_built_router(loss="bce")
    loss, n = bce.loss_from_logits(bce(batch), batch)
    # logits 2 and 0 against 0.5 each: BCE(x, 0.5) = log(1 + e^x) - 0.5 x
    assert n == 2 and loss.item() == pytest.approx((math.log(1 + math.e ** 2) - 1 + math.log(2)) / 2)


def test_cosine_similarity_and_temperature():
    m = hand_built_router(similarity="cosine", temperature=0.5)
    logits = m({"embedding": torch.tensor([[3.0, 0.0]])})
    assert logits[0].tolist() == pytest.approx([2.0, 0.0, 2 * math.sqrt(0.5)])


def test_cluster_features_onehot_soft_and_invalid_centroids():
    emb = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    cents = torch.tensor([[0.0, 0.0], [2.0, 0.0], [9.0, 9.0]])
    valid = torch.tensor([True, True, False])
    assert cluster_features(emb, cents, valid, "onehot").tolist() == [[1, 0, 0], [0, 1, 0]]
    soft = cluster_features(emb, cents, valid, "soft", scale=1.0)
    # row 0: d2 = 0, 4 -> softmax(0, -4); row 1: d2 = 9, 1 -> softmax(-9, -1)
    assert soft[0].tolist() == pytest.approx([1 / (1 + math.exp(-4)), math.exp(-4) / (1 + math.exp(-4)), 0.0])
    assert soft[1, 2].item() == 0.0 and soft[1, 1].item() == pytest.approx(1 / (1 + math.exp(-8)))


def test_kmeans_clamped_to_training_queries_and_carried_by_the_state_dict():
    m = RankRouter(info(3, dim=2), FROZEN, embedding_dim=4, num_clusters=5)
    m.fit_clusters(np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0]], dtype=np.float32))
    assert m.centroid_valid.tolist() == [True, True, True, False, False]
    assert {"centroids", "centroid_valid", "cluster_scale"} <= set(m.state_dict())
    feats = cluster_features(torch.tensor([[5.0, 5.0]]), m.centroids, m.centroid_valid, "onehot")
    assert feats.sum().item() == 1 and feats[0, 3:].sum().item() == 0


def test_capability_profile_init_and_bad_settings():
    m = RankRouter(info(3, tasks=2), FROZEN, capability_init="profile", capability_dim=4)
    profile = torch.tensor(info(3, tasks=2)["task_mean_scores"]).T
    assert torch.allclose(m.capability[:, :2], profile) and m.capability.shape == (3, 4)
    assert RankRouter(info(3), FROZEN, capability_init="random").capability.shape == (3, 32)
    for kw, msg in [({"loss": "hinge"}, "model.loss"), ({"similarity": "cos"}, "model.similarity"),
                    ({"tie_mode": "drop"}, "model.tie_mode"), ({"cluster_features": "hard"}, "cluster_features"),
                    ({"capability_dim": 1}, "capability_dim"),
                    ({"num_clusters": -1}, "num_clusters")]:
        with pytest.raises(UserError, match=msg):
            RankRouter(info(3, tasks=2), FROZEN, **kw).setup("fit")


def test_experiments_compose_with_the_reference_defaults():
    cfg = compose(["+experiment=rankrouter_arena", "data.train=x.parquet"])
    assert cfg.model._target_ == "router_lab.models.rankrouter.RankRouter"
    assert (cfg.data.batch_size, cfg.trainer.max_epochs, cfg.model.lr, cfg.model.embedding_dim, cfg.model.margin,
            cfg.model.num_clusters, cfg.model.similarity, cfg.model.loss, cfg.seed) == (32, 10, 1e-4, 512, 1.0, 50,
                                                                                       "dot", "bpr", 42)
    assert cfg.data.allow_partial_scores and cfg.data.split.test_fraction == 0.1 and cfg.encoder.name == "minilm"
    assert cfg.monitor == "val/score"
    cfg = compose(["+experiment=rankrouter_split2", "model.loss=bce"])
    assert cfg.data.val is None and cfg.model.loss == "bce" and cfg.llm_pool.name == "split2_model7"
    assert list(cfg.data.test_groups) == ["in_distribution", "out_of_distribution", "javascript"]
    cfg = compose(["+experiment=rankrouter_arena", "encoder=qwen2_0_5b", "encoder.pooling=mean"])
    assert cfg.encoder.name == "qwen2_0_5b" and cfg.model.encoder.pooling == "mean"


# ---------------------------------------------------------------- end to end
def arena_overrides(path: Path) -> list[str]:
    return ["+experiment=rankrouter_arena", f"data.train={path}"]


def test_arena_split_is_80_10_10(tmp_path, cfg_factory):
    import hydra

    cfg = cfg_factory(arena_overrides(write_arena(tmp_path / "arena.parquet")))
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_sets["test"])) == (160, 20, 20)
    assert dm.pool.names == MODELS or sorted(dm.pool.names) == sorted(MODELS)


def test_arena_fast_dev_run(tmp_path, cfg_factory):
    from router_lab.train import train

    cfg = cfg_factory(arena_overrides(write_arena(tmp_path / "arena.parquet")) + ["debug=fast_dev_run"])
    metrics, objects = train(cfg)
    assert 0.0 <= metrics["test/router/auc"] <= 1.0 and "test/router/top1_acc" in metrics
    assert not any(k.endswith("acc_predict") for k in metrics)  # preference data: nothing to average per row
    hist = json.loads((Path(cfg.paths.output_dir) / "training_history.json").read_text())["history"]
    assert len(hist) == 1 and "val/auc" in hist[0] and hist[0]["train/loss"] > 0


def test_arena_learns_the_specialists_and_keeps_the_best_auc_checkpoint(tmp_path, cfg_factory):
    from router_lab.train import train

    cfg = cfg_factory(arena_overrides(write_arena(tmp_path / "arena.parquet"))
                      + ["trainer.max_epochs=8", "model.head_lr=3e-3", "model.num_clusters=8"])
    metrics, objects = train(cfg)
    out = Path(cfg.paths.output_dir)
    hist = json.loads((out / "training_history.json").read_text())["history"]
    assert [h["epoch"] for h in hist] == list(range(8))
    assert hist[-1]["train/loss"] < hist[0]["train/loss"]
    assert metrics["val/score_best"] == pytest.approx(max(h["val/auc"] for h in hist), abs=1e-6)
    assert metrics["test/router/auc"] > 0.8 and metrics["test/router/top1_acc"] > 0.7
    m = RankRouter.load_from_checkpoint(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert sorted(m.llm_names) == sorted(MODELS) and int(m.centroid_valid.sum()) == 8


def test_synthetic_fast_dev_run_gets_acc_predict_beside_the_baselines(tmp_path, cfg_factory):
    from router_lab.train import train

    cfg = cfg_factory(["model=rankrouter", "debug=fast_dev_run", "data.train.n_train=300", "data.val.n_val=60",
                       "data.test.test.n_test=100", "model.loss=bce"])
    metrics, _ = train(cfg)
    assert "avg_in_distribution/router/acc_predict" in metrics and "avg_in_distribution/oracle/acc_predict" in metrics
    assert "avg_in_distribution/router/acc" in metrics and any(k.endswith("/router/auc") for k in metrics)


def test_fine_tuned_tiny_qwen2_with_soft_clusters(tmp_path, cfg_factory, tiny_encoders):
    from router_lab.train import train

    cfg = cfg_factory(arena_overrides(write_arena(tmp_path / "arena.parquet", n=40))
                      + ["encoder=qwen2_0_5b", f"encoder.pretrained={tiny_encoders['qwen2']}", "encoder.frozen=false",
                         "encoder.max_length=32", "model.cluster_features=soft", "debug=fast_dev_run"])
    metrics, objects = train(cfg)
    assert objects["model"].encoder is not None and "test/router/auc" in metrics
    assert int(objects["model"].centroid_valid.sum()) == min(50, 32)


# ---------------------------------------------------------------- bad input
BAD_ROWS = {
    "winner_outside_the_set": ({"model_a": "coder-7b", "model_b": "poet-13b", "winner": "both"}, "'winner'"),
    "same_model_twice": ({"model_a": "coder-7b", "model_b": "coder-7b", "winner": "tie"}, "both 'coder-7b'"),
    "unknown_model_with_fail": ({"model_a": "coder-7b", "model_b": "gpt-9", "winner": "model_a"}, "'gpt-9'"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_arena_rows_are_one_error_line_and_no_result(tmp_path, cfg_factory, capsys, case):
    row, expected = BAD_ROWS[case]
    path = write_arena(tmp_path / "arena.parquet", n=20, extra_rows=[{"question_id": "bad", "prompt": "x", **row}])
    cfg = cfg_factory(arena_overrides(path) + [f"data.source.llm_names=[{','.join(MODELS)}]",
                                               "data.source.unknown_models=fail", "debug=fast_dev_run"])
    assert expected in run_failing(cfg, capsys, "auc")


def test_unknown_models_are_dropped_with_a_count_in_the_log(tmp_path, cfg_factory, caplog):
    from router_lab.train import train

    extra = [{"question_id": f"x{i}", "prompt": "hello", "model_a": "gpt-9", "model_b": "coder-7b",
              "winner": "model_a"} for i in range(3)]
    path = write_arena(tmp_path / "arena.parquet", n=40, extra_rows=extra)
    cfg = cfg_factory(arena_overrides(path) + [f"data.source.llm_names=[{','.join(MODELS)}]", "debug=fast_dev_run"])
    with caplog.at_level(logging.WARNING):
        train(cfg)
    assert "dropped 3 row(s)" in caplog.text and "gpt-9" in caplog.text


def test_empty_split_after_filtering_is_one_error_line(tmp_path, cfg_factory, capsys):
    path = write_arena(tmp_path / "arena.parquet", n=10)
    cfg = cfg_factory(arena_overrides(path) + ["data.source.llm_names=[nobody-1b,nobody-2b]", "debug=fast_dev_run"])
    assert "no records" in run_failing(cfg, capsys, "auc")


def test_training_data_of_ties_only_is_one_error_line(tmp_path, cfg_factory, capsys):
    path = tmp_path / "ties.parquet"
    pd.DataFrame([{"question_id": f"q{i}", "prompt": f"p {i}", "model_a": "a", "model_b": "b", "winner": "tie"}
                  for i in range(20)]).to_parquet(path)
    cfg = cfg_factory(arena_overrides(path) + ["debug=fast_dev_run"])
    assert "no preference pair" in run_failing(cfg, capsys, "auc")


def test_bad_model_setting_from_the_command_line(tmp_path):
    path = write_arena(tmp_path / "arena.parquet", n=20)
    r = subprocess.run([sys.executable, "-m", "router_lab.train", *arena_overrides(path), "model.loss=hinge",
                        f"paths.log_dir={tmp_path}/out", f"paths.cache_dir={tmp_path}/cache", "logger=none"],
                       cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                       timeout=300)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(errors) == 1 and "model.loss='hinge'" in errors[0]
    assert not list((tmp_path / "out").rglob("metrics.json"))
