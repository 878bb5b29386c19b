"""The classifier router trains with fast_dev_run on tiny random encoders of every
architecture, frozen and fine-tuned; confidence and fallback behave as configured."""
from __future__ import annotations

import pytest
import torch

from router_lab.models.classifier import ClassifierRouter
from router_lab.pool import PoolError
from router_lab.train import train

SMALL = ["data.train.n_train=120", "data.val.n_val=40", "data.test.test.n_test=60", "data.batch_size=16"]


@pytest.mark.parametrize("arch,pooling", [("bert", "mean"), ("distilbert", "cls"), ("deberta_v2", "cls"),
                                          ("qwen2", "last_token")])
def test_classifier_fast_dev_run_finetunes_every_architecture(cfg_factory, tiny_encoders, arch, pooling):
    cfg = cfg_factory(SMALL + [f"encoder.pretrained={tiny_encoders[arch]}", f"encoder.name=tiny_{arch}",
                               f"encoder.pooling={pooling}", "encoder.frozen=false", "encoder.max_length=32",
                               "encoder.truncation_side=left", "+trainer.fast_dev_run=true"])
    metrics, objects = train(cfg)
    assert objects["model"].encoder is not None  # fine-tune mode holds the backbone
    assert any(k.endswith("/router/acc_predict") for k in metrics)


def test_classifier_frozen_mode_has_only_a_head(cfg_factory, tiny_bert):
    cfg = cfg_factory(SMALL + [f"encoder.pretrained={tiny_bert}", "encoder.name=tiny", "+trainer.fast_dev_run=true"])
    metrics, objects = train(cfg)
    model = objects["model"]
    assert model.encoder is None
    assert sum(p.numel() for p in model.parameters()) < 50_000


def info(**kw):
    base = {"llm_names": ["a", "b", "c"], "categories": ["math", "code", "chat"], "label_kind": "label",
            "embedding_dim": 4, "train_mean_scores": [0.2, 0.9, 0.5]}
    base.update(kw)
    return base


def test_low_confidence_goes_to_the_fallback_llm():
    m = ClassifierRouter(info(), {"frozen": True}, category_to_llm={"math": "a", "code": "b", "chat": "c"},
                         confidence_threshold=0.6, fallback_llm="c")
    logits = torch.log(torch.tensor([[0.8, 0.1, 0.1], [0.5, 0.4, 0.1], [0.1, 0.7, 0.2]]))
    d = m._decide(logits)
    assert d["llm"].tolist() == [0, 2, 1]
    assert d["fallback"].tolist() == [False, True, False]
    torch.testing.assert_close(d["confidence"], torch.tensor([0.8, 0.5, 0.7]))
    # utilities: probability mass per LLM of the categories it serves
    torch.testing.assert_close(d["utilities"][0], torch.tensor([0.8, 0.1, 0.1]))


def test_unmapped_categories_use_the_best_single_llm_by_default():
    m = ClassifierRouter(info(), {"frozen": True}, category_to_llm={"math": "a"})
    d = m._decide(torch.log(torch.tensor([[0.1, 0.8, 0.1]])))
    assert d["llm"].tolist() == [1]  # 'code' unmapped -> fallback = best training mean ('b')
    assert d["fallback"].tolist() == [False]  # routed to the fallback LLM, not out of scope


def test_mapping_to_an_unknown_llm_is_one_clear_error():
    with pytest.raises(PoolError, match="unknown LLM 'gpt-9'"):
        ClassifierRouter(info(), {"frozen": True}, category_to_llm={"math": "gpt-9"})
    with pytest.raises(ValueError, match="category 'poetry'"):
        ClassifierRouter(info(), {"frozen": True}, category_to_llm={"poetry": "a"})
