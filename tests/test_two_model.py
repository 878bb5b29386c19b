"""RouteLLM's two-model metrics (APGR, CPT) on hand-built inputs and through train.py."""
from __future__ import annotations

import numpy as np
import pytest

from router_lab.errors import UserError
from router_lab.two_model import (
    apgr,
    call_curve,
    check_spec,
    cpt,
    pgr,
    two_model_metrics,
)


def test_curve_pgr_apgr_and_cpt_of_a_hand_built_set():
    # 4 queries; the strong model wins on queries 0 and 1 only
    strong, weak = np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.0, 0.0, 0.0, 0.0])
    share, quality = call_curve(np.array([0.9, 0.8, 0.1, 0.0]), strong, weak)  # a perfect router
    assert share.tolist() == [0, 0.25, 0.5, 0.75, 1.0] and quality.tolist() == [0, 0.25, 0.5, 0.5, 0.5]
    values = pgr(quality, 0.0, 0.5)
    assert values.tolist() == [0, 0.5, 1, 1, 1]
    # trapezoids: 0.25 * (0.25 + 0.75 + 1 + 1) = 0.75
    assert apgr(share, values) == pytest.approx(0.75)
    assert cpt(share, values, 0.5) == 0.25 and cpt(share, values, 0.8) == 0.5
    # the worst router: strong calls go to the queries it loses first
    share, quality = call_curve(np.array([0.0, 0.1, 0.8, 0.9]), strong, weak)
    assert apgr(share, pgr(quality, 0.0, 0.5)) == pytest.approx(0.25)
    assert np.isnan(cpt(share, np.zeros(5), 0.5))


def test_metrics_use_effective_scores_and_skip_unscored_rows():
    util = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    scores = np.array([[0.7, 0.0], [0.2, 0.3], [np.nan, 1.0]])  # probability rows: > 0 counts 1
    m = two_model_metrics(util, scores, ["probability"] * 3, strong=0, weak=1)
    assert m["strong_quality"] == 1.0 and m["weak_quality"] == 0.5  # the unscored row is left out
    # row 0 (the strong model's only win) is preferred first: half the calls recover the gap
    assert m["cpt50"] == 0.5 and m["apgr"] == pytest.approx((0.5 * (0 + 1) + 0.5 * (1 + 1)) / 2)
    assert two_model_metrics(util, np.array([[1.0, 1.0]] * 3), ["probability"] * 3, 0, 1) is None


def test_names_outside_the_pool_are_one_line():
    with pytest.raises(UserError, match=r"two_model.weak='gpt-9'"):
        check_spec({"strong": "a", "weak": "gpt-9"}, ["a", "b"])
    with pytest.raises(UserError, match="both 'a'"):
        check_spec({"strong": "a", "weak": "a"}, ["a", "b"])


def test_train_reports_apgr_for_each_test_set(tmp_path, cfg_factory):
    from router_lab.train import train

    cfg = cfg_factory(["model=knn", "model.k=10", "data.train.n_train=300", "data.val.n_val=60",
                       "data.test.test.n_test=100", "+two_model.strong=frontier-xl", "+two_model.weak=tiny-chat-1b"])
    metrics, _ = train(cfg)
    keys = [k for k in metrics if k.endswith("/router/apgr")]
    assert keys and all(0.0 <= metrics[k] <= 1.5 for k in keys)
