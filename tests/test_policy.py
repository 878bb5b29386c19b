"""The one routing policy (router_lab.policy) on hand-built arrays, and every router family's
decide() against the utility contract (families discovered from conf/model/*.yaml)."""
from __future__ import annotations

import math

import hydra
import numpy as np
import pytest
import torch

from router_lab import CONF_DIR
from router_lab.policy import apply_fallback, choose_llm, decide, lambda_grid

# Three LLMs: cheap/poor, mid, dear/good; per-LLM costs.
UTIL = np.array([[0.2, 0.5, 0.9], [0.6, 0.65, 0.7]])
COSTS = np.array([0.0, 1.0, 10.0])


def test_choose_llm_trades_utility_for_cost():
    # lambda 0: the cheapest; lambda 5: row 0 0.5*5-1=1.5 beats 1.0 and 4.5-10; row 1 3.25-1 < 3.0-0
    np.testing.assert_array_equal(choose_llm(UTIL, COSTS, 0.0), [0, 0])
    np.testing.assert_array_equal(choose_llm(UTIL, COSTS, 5.0), [1, 0])
    # lambda 100: 90 - 10 beats 50 - 1 (row 0); 70 - 10 = 60 < 65 - 1 = 64 (row 1)
    np.testing.assert_array_equal(choose_llm(UTIL, COSTS, 100.0), [2, 1])
    # inf / None: the best utility, or the family's own choice when given
    np.testing.assert_array_equal(choose_llm(UTIL, COSTS, math.inf), [2, 2])
    np.testing.assert_array_equal(choose_llm(UTIL, COSTS, None, default=np.array([0, 1])), [0, 1])
    # per-row costs, torch in -> torch out
    out = choose_llm(torch.tensor(UTIL), torch.tensor(np.tile(COSTS, (2, 1))), 5.0)
    assert isinstance(out, torch.Tensor) and out.tolist() == [1, 0]
    with pytest.raises(ValueError, match="cost_lambda"):
        choose_llm(UTIL, COSTS, -1.0)


def test_apply_fallback_below_threshold_only():
    llm, fb = apply_fallback(np.array([2, 1]), np.array([0.9, 0.4]), 0.5, 0)
    np.testing.assert_array_equal(llm, [2, 0])
    np.testing.assert_array_equal(fb, [False, True])
    # no threshold or no fallback LLM: unchanged; earlier flags are kept
    llm, fb = apply_fallback(torch.tensor([2, 1]), torch.tensor([0.9, 0.4]), None, 0, torch.tensor([True, False]))
    assert llm.tolist() == [2, 1] and fb.tolist() == [True, False]
    llm, fb = decide(UTIL, COSTS, 100.0, confidence=np.array([0.3, 0.9]), threshold=0.5, fallback_index=0)
    np.testing.assert_array_equal(llm, [0, 1])


def test_one_lambda_grid():
    g = lambda_grid([1.0, 3.0], points_per_decade=1)
    # scale = mean cost 2: 0, 2e-3 ... 2e6 (10 points), inf
    assert g[0] == 0.0 and math.isinf(g[-1]) and len(g) == 12
    assert g[1] == pytest.approx(2e-3) and g[-2] == pytest.approx(2e6)
    assert lambda_grid(np.array([[1.0, 3.0], [1.0, 3.0]]), 1) == g  # per-row costs: the same scale


def _families() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def _data_info(n_llms: int = 4, dim: int = 8) -> dict:
    names = [f"llm-{j}" for j in range(n_llms)]
    return {"llm_names": names, "llm_costs": [0.1 * (j + 1) for j in range(n_llms)], "categories": names,
            "label_kind": "best_llm", "tasks": ["a", "b"], "embedding_dim": dim,
            "train_mean_scores": [0.5] * n_llms, "has_scores": True, "has_cluster_ids": False, "num_clusters": 0,
            "task_mean_scores": [[0.2, 0.4, 0.6, 0.8], [0.8, 0.6, 0.4, 0.2]]}


def test_families_are_discovered():
    assert {"classifier", "routerdc", "rankrouter"} <= set(_families())


@pytest.mark.parametrize("family", _families())
def test_each_family_decide_honours_the_utility_contract(family):
    from tests.conftest import compose

    cfg = compose([f"model={family}", "encoder.frozen=true"])
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model, data_info=_data_info(), _convert_="all").eval()
    if hasattr(model, "set_index"):  # a non-parametric family: "fitting" stores the training set
        model.set_index(torch.randn(64, 8), torch.rand(64, 4), torch.ones(64, 4, dtype=torch.bool))
    costs = torch.tensor([0.1, 0.2, 0.3, 0.4]).expand(16, 4)
    with torch.no_grad():
        d = model.decide({"embedding": torch.randn(16, 8) * 3, "costs": costs})
    u = d["utilities"]
    # (B, L), finite, in [0, 1]
    assert u.shape == (16, 4) and torch.isfinite(u).all() and (u >= 0).all() and (u <= 1).all(), family
    # higher is better: the family's own choice is its best-utility LLM (unless it fell back)
    own = ~d["fallback"]
    assert torch.equal(d["llm"][own], u.argmax(-1)[own]), family
    # the policy on these utilities: lambda 0 = the cheapest, inf = the best utility
    assert (choose_llm(u, costs, 0.0) == 0).all()
    assert torch.equal(choose_llm(u, costs, math.inf), u.argmax(-1))
    assert ((d["confidence"] >= 0) & (d["confidence"] <= 1)).all()


def test_fit_platt_recovers_rates_and_stays_monotone():
    from router_lab.policy import fit_platt

    # LLM 0: right on 3 of 4 rows whatever the feature; LLM 1: right exactly when its feature is high;
    # LLM 2: right when its feature is LOW -> a_2 clamps at ~0 (no decreasing map), b_2 ~ its rate.
    x = torch.tensor([[0.0, 2.0, 2.0], [1.0, -2.0, -2.0]] * 50)
    y = torch.tensor([[1.0, 1.0, 0.0], [0.5, 0.0, 1.0]] * 50)
    a, b = fit_platt(x, y)
    p = torch.sigmoid(a * x + b)
    assert torch.allclose(p[:, 0].mean(), torch.tensor(0.75), atol=0.02)
    assert p[0, 1] > 0.95 and p[1, 1] < 0.05
    assert a[2] < 0.05 and torch.allclose(p[:, 2], torch.tensor(0.5), atol=0.05)
    # masked / NaN entries are ignored
    y2 = y.clone()
    y2[:, 0] = float("nan")
    a2, b2 = fit_platt(x, y2, torch.ones_like(y2, dtype=torch.bool))
    assert torch.isfinite(a2).all() and torch.isfinite(b2).all()


def test_a_family_is_a_router_module_that_must_decide():
    """The family contract is abstract: a subclass without ``decide`` cannot be built."""
    from router_lab.models.common import RouterModule
    from router_lab.runs import FAMILIES, family_class

    for name, target in FAMILIES.items():
        assert issubclass(family_class(target, name), RouterModule), name

    class NoDecide(RouterModule):
        def training_step(self, batch, batch_idx):
            return None

    with pytest.raises(TypeError, match="decide"):
        NoDecide()
