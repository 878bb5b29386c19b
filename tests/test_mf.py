"""Matrix-factorisation router: the factorised logits and both losses on hand-built inputs,
the cost-aware decision, and the real entry point (frozen MiniLM on the synthetic benchmark;
an LLM without training scores; a score range the pointwise loss cannot take).

    python -m pytest tests/test_mf.py -q
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import FROZEN_MINILM as FROZEN, run_failing, toy_data_info as info

from router_lab.errors import UserError
from router_lab.models.mf import MFRouter, pairwise_loss, pointwise_loss


def hand_built(**kw) -> MFRouter:
    """Identity projection, LLM embeddings on the axes (and the diagonal), w = (1, 2)."""
    m = MFRouter(info(3, 2, kw.pop("costs", None)), FROZEN, dim=2, dropout=0.0, **kw)
    with torch.no_grad():
        m.query_projection[-1].weight.copy_(torch.eye(2))
        m.query_projection[-1].bias.zero_()
        m.llm_embeddings.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.5], [1.0, 1.0]]))
        m.classifier.weight.copy_(torch.tensor([[1.0, 2.0]]))
    return m.eval()


def test_logits_are_the_factorised_product_plus_bias():
    m = hand_built(llm_bias=False)
    logits = m({"embedding": torch.tensor([[2.0, 1.0]])})
    # normalize(v) * q, then w: llm0 (1,0)->2; llm1 (0,1)->2*1=2; llm2 (1,1)/sqrt2 -> (2 + 2)/sqrt2
    assert logits[0].tolist() == pytest.approx([2.0, 2.0, 4 / math.sqrt(2)])
    biased = hand_built()
    # the bias starts at logit(train mean = 0.5) = 0
    assert biased.bias.tolist() == pytest.approx([0.0, 0.0, 0.0])
    with torch.no_grad():
        biased.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    assert biased({"embedding": torch.tensor([[2.0, 1.0]])})[0].tolist() == pytest.approx(
        [2.0, 3.0, 4 / math.sqrt(2) - 1])


def test_pointwise_and_pairwise_losses_of_a_hand_built_batch():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    # BCE over the two scored LLMs: -log sigmoid(2) and -log(1 - sigmoid(0))
    expected = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    assert pointwise_loss(logits, targets, mask).item() == pytest.approx(expected)
    # one pair (llm0 > llm1): -log sigmoid(2 - 0); the tie with the unscored llm2 does not count
    assert pairwise_loss(logits, targets, mask).item() == pytest.approx(math.log(1 + math.exp(-2)))
    all_ties = pairwise_loss(logits, torch.zeros(1, 3), torch.ones(1, 3, dtype=torch.bool))
    assert all_ties.item() == 0.0 and all_ties.requires_grad is False


def test_decide_pure_quality_and_willingness_to_pay():
    m = hand_built(llm_bias=False, costs=[1.0, 0.0, 0.5])
    q = {"embedding": torch.tensor([[2.0, 1.0]])}
    d = m.decide(q)
    assert d["llm"].tolist() == [2] and d["confidence"].item() == pytest.approx(1 / (1 + math.exp(-4 / math.sqrt(2))))
    assert d["utilities"][0].tolist() == pytest.approx(torch.sigmoid(d["logits"][0]).tolist())
    assert m.decide(q, cost_lambda=0.1)["llm"].tolist() == [1]  # cost decides
    assert m.decide(q, cost_lambda=float("inf"))["llm"].tolist() == [2]


def test_bad_settings_are_user_errors():
    for bad, match in ({"loss": "hinge"}, "model.loss='hinge'"), ({"dim": 0}, "model.dim=0"):
        with pytest.raises(UserError, match=match):
            MFRouter(info(), FROZEN, **bad)


# ---------------------------------------------------------------- end to end

SMALL = ["data.train.n_train=300", "data.val.n_val=100", "data.test.test.n_test=150", "trainer.max_epochs=5"]


@pytest.mark.parametrize("loss", ["pointwise", "pairwise"])
def test_synthetic_end_to_end_learns_and_reloads(tmp_path, cfg_factory, loss):
    from router_lab.train import train

    cfg = cfg_factory(["model=mf", f"model.loss={loss}", "model.head_lr=1e-2", *SMALL])
    metrics, objects = train(cfg)
    hist = json.loads((Path(cfg.paths.output_dir) / "training_history.json").read_text())["history"]
    losses = [h["train/loss"] for h in hist if h.get("train/loss") is not None]
    assert losses[-1] < losses[0]
    r, rnd = metrics["avg_in_distribution/router/acc_predict"], metrics["avg_in_distribution/random/acc_predict"]
    assert r > rnd + 0.05, (r, rnd)
    m = MFRouter.load_from_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt", weights_only=True)
    assert m.llm_names == objects["model"].llm_names and m.hparams.loss == loss


def write_table(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_an_llm_missing_from_the_training_data_is_one_error_line(tmp_path, cfg_factory, capsys):
    rows = [{"query": f"question {i} about {t}", "task": t, "scores": {"a": float(i % 2), "b": float(i % 3 == 0)}}
            for i in range(40) for t in ("math", "code")]
    path = write_table(tmp_path / "train.jsonl", rows)
    cfg = cfg_factory(["model=mf", "data=files", f"data.train={path}", "llm_pool.llms=[a,b,c]",
                       "data.allow_partial_scores=true", "trainer.max_epochs=1"])
    line = run_failing(cfg, capsys)
    assert "no training record scores ['c']" in line and "llm_pool" in line
