"""Evaluation as pure functions on arrays: a router's decisions and a test set's ground truth
in, the flat metrics of metrics.json out (router and baselines), checked by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from router_lab.evaluation import batch_truth, decision_arrays, evaluate

NAN = float("nan")


def truth(scores, tasks, costs=None, probability=False) -> dict:
    scores = np.asarray(scores, dtype=np.float32)
    t = {"scores": scores, "is_probability": np.full(len(scores), probability), "label": np.full(len(scores), -1),
         "task": np.array(tasks, dtype=object)}
    if costs is not None:
        t["costs"] = np.tile(np.asarray(costs, np.float32), (len(scores), 1))
    return t


def test_router_and_baselines_from_arrays_alone():
    train = truth([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], ["a", "a", "b"])  # best single: LLM 0
    test = truth([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 1.0]], ["a", "b", "b", "a"], costs=[1.0, 3.0])
    decisions = {"chosen": np.array([0, 1, 0, 1]), "utilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4],
                                                                         [0.3, 0.7]])}
    m = evaluate({"s": decisions | test}, train, groups={"all": ["s"]})
    assert m["s/router/acc_predict"] == pytest.approx(3 / 4)  # scores of the chosen LLMs: 1, 1, 0, 1
    assert m["s/router/acc"] == pytest.approx(3 / 4)
    assert m["s/router/cost"] == pytest.approx((1 + 3 + 1 + 3) / 4)
    assert m["s/best_single/acc_predict"] == pytest.approx(2 / 4)  # LLM 0 everywhere: 1, 0, 0, 1
    assert m["s/oracle/acc_predict"] == 1.0
    assert m["s/oracle/cost"] == pytest.approx((1 + 3 + 3 + 1) / 4)  # the cheapest best LLM of each row
    assert m["s/random/acc_predict"] == pytest.approx(5 / 8)
    # task a: LLM 0 (mean 1 vs 0.5); task b: LLM 1
    assert m["s/best_per_task/acc_predict"] == 1.0
    assert m["avg_all/router/acc_predict"] == m["s/router/acc_predict"]
    # a set without a router's decisions still gets its baselines
    assert "s/router/acc" not in evaluate({"s": test}, train) and "s/oracle/acc" in evaluate({"s": test}, train)


def test_label_only_data_gets_the_majority_baseline():
    train = {"scores": np.zeros((3, 0), np.float32), "is_probability": np.zeros(3, bool),
             "label": np.array([1, 1, 0]), "task": np.array(["t"] * 3, dtype=object)}
    test = train | {"label": np.array([1, 0, -1])}
    m = evaluate({"s": test | {"chosen": np.full(3, -1), "pred_label": np.array([1, 1, 0])}}, train)
    assert m["s/router/accuracy"] == pytest.approx(1 / 2)  # the unknown label is left out
    assert m["s/majority/accuracy"] == pytest.approx(1 / 2) and m["s/random/accuracy"] == pytest.approx(1 / 2)


def test_decide_output_and_batch_truth_become_the_same_arrays():
    d = {"llm": torch.tensor([1, 0]), "utilities": torch.tensor([[0.2, 0.8], [0.6, 0.4]], dtype=torch.float64),
         "confidence": torch.tensor([0.8, 0.6]), "fallback": torch.tensor([False, True]),
         "category": torch.tensor([3, 2]), "logits": torch.zeros(2, 2)}
    a = decision_arrays(d)
    assert set(a) == {"chosen", "utilities", "confidence", "fallback", "pred_label"}
    assert a["chosen"].tolist() == [1, 0] and a["pred_label"].tolist() == [3, 2]
    assert a["utilities"].dtype == np.float32
    batch = {"scores": torch.tensor([[1.0, 0.0], [0.5, 0.0]]),
             "score_mask": torch.tensor([[True, True], [True, False]]),
             "is_probability": torch.tensor([False, False]), "label": torch.tensor([-1, -1])}
    t = batch_truth(batch)
    assert np.isnan(t["scores"][1, 1]) and t["scores"][0].tolist() == [1.0, 0.0] and "costs" not in t
