"""kNN router: exact search and score estimates on hand-built vectors, the cost-aware
decision, the index carried by checkpoints, and the real entry point (frozen MiniLM on the
synthetic benchmark; a too-large k from the command line).

    python -m pytest tests/test_knn.py -q
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FROZEN_MINILM as FROZEN, REPO, toy_data_info as info

from router_lab.errors import UserError
from router_lab.models.knn import KNNRouter
from router_lab.policy import choose_llm

def hand_built(**kw) -> KNNRouter:
    """Four training queries on the unit circle's axes; llm0 is right on +x, llm1 on +y."""
    m = KNNRouter(info(3, 2, kw.pop("costs", None)), FROZEN, **kw)
    emb = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    scores = torch.tensor([[1.0, 0.0, 0.5], [1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 1.0, 0.0]])
    mask = torch.ones_like(scores, dtype=torch.bool)
    mask[3, 2] = False  # llm2 unscored on the last query
    m.set_index(emb, scores, mask)
    return m.eval()


def brute_force(m: KNNRouter, q: torch.Tensor, k: int) -> torch.Tensor:
    x = m.index_embeddings
    if m.hparams.metric == "cosine":
        d = 1 - torch.nn.functional.normalize(q, dim=-1) @ x.T
    else:
        d = torch.cdist(q, x)
    return d.topk(k, largest=False).indices


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_chunked_search_equals_brute_force(metric):
    torch.manual_seed(0)
    m = KNNRouter(info(2, 8), FROZEN, k=7, metric=metric, chunk_size=13)
    m.set_index(torch.randn(100, 8), torch.rand(100, 2), torch.ones(100, 2, dtype=torch.bool))
    q = torch.randn(9, 8)
    dist, idx = m.search(q, 7)
    assert idx.tolist() == brute_force(m, q, 7).tolist()
    assert (dist[:, 1:] >= dist[:, :-1] - 1e-6).all()  # nearest first
    if metric == "l2":
        torch.testing.assert_close(dist, torch.cdist(q, m.index_embeddings).gather(1, idx), atol=1e-4, rtol=0)


def test_uniform_and_distance_weighted_scores_with_unscored_neighbours():
    q = {"embedding": torch.tensor([[1.0, 0.2]])}
    # k=2 (cosine): the two +x queries -> llm0 = 1, llm1 = 0, llm2 = 0.5
    assert hand_built(k=2, weighting="uniform")(q)[0].tolist() == pytest.approx([1.0, 0.0, 0.5])
    # k=4 uniform: mean over all four; llm2 only over the three that scored it
    assert hand_built(k=4, weighting="uniform")(q)[0].tolist() == pytest.approx([0.5, 0.5, 0.5])
    # k=4 distance-weighted: the near +x queries dominate
    util = hand_built(k=4, weighting="distance")(q)[0]
    assert util[0] > 0.9 and util[1] < 0.1 and util[2] == pytest.approx(0.5)
    # l2 on raw vectors: (1, 0.2) is nearest (1, 0) then (2, 0.1) then (0, 1)
    m = hand_built(k=3, weighting="uniform", metric="l2")
    assert m(q)[0].tolist() == pytest.approx([2 / 3, 1 / 3, 0.5])


def test_decide_pure_quality_and_willingness_to_pay():
    q = {"embedding": torch.tensor([[1.0, 0.2], [0.1, 1.0]])}
    m = hand_built(k=2, weighting="uniform", costs=[1.0, 0.2, 0.0])
    d = m.decide(q)
    assert d["llm"].tolist() == [0, 1] and d["confidence"].tolist() == pytest.approx([1.0, 1.0])
    assert not d["fallback"].any()
    # Cheap wins when quality is worth little: lambda * util - cost
    assert m.decide(q, cost_lambda=0.1)["llm"].tolist() == [2, 2]
    assert m.decide(q, cost_lambda=float("inf"))["llm"].tolist() == [0, 1]
    # per-query costs in the batch take precedence over the pool's
    qc = {**q, "costs": torch.tensor([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0]])}
    assert m.decide(qc, cost_lambda=1.0)["llm"].tolist() == [0, 1]
    assert choose_llm(torch.tensor([[0.2, 0.9]]), torch.tensor([[0.0, 1.0]]), 1.0).tolist() == [0]


def test_index_is_carried_by_the_state_dict_and_bad_settings_are_user_errors():
    m = hand_built(k=2)
    fresh = KNNRouter(info(3, 2), FROZEN, k=2)
    assert fresh.index_size == 0
    fresh.load_state_dict(m.state_dict())
    q = {"embedding": torch.tensor([[0.3, 1.0]])}
    assert fresh.index_size == 4 and torch.equal(fresh(q), m(q))
    with pytest.raises(UserError, match=r"model.k=5 is larger than the 4 training queries"):
        hand_built(k=5)
    for bad, match in ({"weighting": "gaussian"}, "model.weighting"), ({"metric": "dot"}, "model.metric"), \
            ({"k": 0}, "model.k=0"):
        with pytest.raises(UserError, match=match):
            KNNRouter(info(), FROZEN, **bad)


# ---------------------------------------------------------------- end to end

SMALL = ["data.train.n_train=300", "data.val.n_val=100", "data.test.test.n_test=150"]


def test_synthetic_end_to_end_stores_the_index_without_an_optimiser(tmp_path, cfg_factory):
    from router_lab.train import train

    cfg = cfg_factory(["model=knn", "model.k=10", *SMALL])
    metrics, objects = train(cfg)
    model, trainer = objects["model"], objects["trainer"]
    assert model.index_size == 300 and trainer.current_epoch == 1  # one pass, then stop
    assert list(model.parameters()) == [] and all(type(o).__name__ == "_MockOptimizer" for o in trainer.optimizers)
    r, rnd = metrics["avg_in_distribution/router/acc_predict"], metrics["avg_in_distribution/random/acc_predict"]
    assert r > rnd + 0.05, (r, rnd)
    out = Path(cfg.paths.output_dir)
    assert (out / "metrics.json").exists()
    m = KNNRouter.load_from_checkpoint(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert m.index_size == 300 and torch.equal(m.index_embeddings, model.index_embeddings)


def test_k_larger_than_the_training_set_is_one_error_line_and_no_result(tmp_path):
    r = subprocess.run([sys.executable, "-m", "router_lab.train", "model=knn", "model.k=500", "data.train.n_train=200",
                        "data.val.n_val=50", "data.test.test.n_test=50", f"paths.log_dir={tmp_path}/out",
                        f"paths.cache_dir={tmp_path}/cache", "logger=none"],
                       check=False, cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                       timeout=300)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(errors) == 1 and "model.k=500 is larger than the 200 training queries" in errors[0]
    assert not list((tmp_path / "out").rglob("metrics.json")) and "acc_predict" not in r.stdout
