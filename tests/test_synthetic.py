"""The built-in synthetic benchmark: deterministic, valid, learnable, and matching its pool config.

    python -m pytest tests/test_synthetic.py -q
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from router_lab.data.records import DataError
from router_lab.data.loaders.synthetic import (
    DOMAINS,
    LLM_NAMES,
    describe_benchmark,
    effective_scores,
    make_synthetic_benchmark,
    synthetic_pool,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEST_SETS = [f"test_{d}" for d in DOMAINS if d not in ("law", "translation")] + ["ood_law", "ood_translation"]


@pytest.fixture(scope="module")
def splits():
    return make_synthetic_benchmark(seed=0)


def _as_tuples(records):
    return [(r.id, r.query, r.task, r.scores, r.costs, r.score_type) for r in records]


def test_default_split_names_and_sizes(splits):
    assert list(splits) == ["train", "val", *DEFAULT_TEST_SETS]
    assert len(splits["train"]) == 3000 and len(splits["val"]) == 500
    assert [len(splits[k]) for k in DEFAULT_TEST_SETS] == [150] * 10
    for name in DEFAULT_TEST_SETS:
        domain = name.split("_", 1)[1]
        assert {r.task for r in splits[name]} == {domain}


def test_uneven_test_size_is_spread_and_kept():
    s = make_synthetic_benchmark(n_train=20, n_val=5, n_test=23, seed=3)
    sizes = [len(v) for k, v in s.items() if k not in ("train", "val")]
    assert sum(sizes) == 23 and max(sizes) - min(sizes) == 1


def test_same_seed_same_records(splits):
    again = make_synthetic_benchmark(seed=0)
    for name in splits:
        assert _as_tuples(splits[name]) == _as_tuples(again[name])


def test_different_seed_different_sample_same_pool(splits):
    other = make_synthetic_benchmark(seed=1)
    assert {r.query for r in other["train"]} != {r.query for r in splits["train"]}
    assert {r.id for r in other["train"]}.isdisjoint(r.id for r in splits["train"])
    # The pool's skills do not move with the seed: per-domain means agree on large samples.
    big = [make_synthetic_benchmark(n_train=6000, n_val=1, n_test=10, seed=s)["train"] for s in (7, 8)]
    for domain in ("math", "code", "medicine"):
        means = [effective_scores([r for r in b if r.task == domain]).mean(axis=0) for b in big]
        assert np.abs(means[0] - means[1]).max() < 0.06
        assert LLM_NAMES[int(means[0].argmax())] == LLM_NAMES[int(means[1].argmax())]


def test_ids_unique_and_texts_varied(splits):
    ids = [r.id for recs in splits.values() for r in recs]
    assert len(ids) == len(set(ids))
    queries = {r.query for recs in splits.values() for r in recs}
    assert len(queries) > 4000


def test_ood_domains_absent_from_train_and_val(splits):
    for name in ("train", "val"):
        tasks = {r.task for r in splits[name]}
        assert not tasks & {"law", "translation"}
        assert tasks == set(DOMAINS) - {"law", "translation"}
    custom = make_synthetic_benchmark(n_train=200, n_val=50, n_test=90, seed=0, ood_domains=("math",))
    assert "ood_math" in custom and "test_math" not in custom and "test_law" in custom
    assert all(r.task != "math" for r in custom["train"] + custom["val"])


def test_bad_arguments_raise_one_line_errors():
    with pytest.raises(DataError, match="ood_domains"):
        make_synthetic_benchmark(ood_domains=("astrology",))
    with pytest.raises(DataError, match="n_test"):
        make_synthetic_benchmark(n_test=3)


def test_scores_and_costs_are_valid(splits):
    pool_cost = {l["name"]: l["cost"] for l in synthetic_pool()["llms"]}
    for recs in splits.values():
        for r in recs:
            assert r.label is None and r.cluster_id is None
            assert list(r.scores) == list(LLM_NAMES) and list(r.costs) == list(LLM_NAMES)
            for name, s in r.scores.items():
                assert not math.isnan(s) and 0.0 <= s <= 1.0
                if r.score_type == "multi_attempt":
                    assert abs(s * 10 - round(s * 10)) < 1e-9
                else:
                    assert r.score_type == "probability"
                    assert s == 0.0 or 0.0 < s <= 1.0
            # Costs follow the pool's base cost times one length factor per query.
            factors = {round(r.costs[n] / pool_cost[n], 3) for n in LLM_NAMES}
            assert len(factors) == 1 and next(iter(factors)) > 0
    score_types = {r.task: r.score_type for recs in splits.values() for r in recs}
    assert set(score_types.values()) == {"multi_attempt", "probability"}


def test_costs_span_two_orders_of_magnitude_and_grow_with_length(splits):
    costs = [l["cost"] for l in synthetic_pool()["llms"]]
    assert max(costs) / min(costs) >= 50
    train = splits["train"]
    words = np.array([len(r.query.split()) for r in train])
    frontier_cost = np.array([r.costs["frontier-xl"] for r in train])
    assert np.corrcoef(words, frontier_cost)[0, 1] > 0.99


def test_no_llm_dominates(splits):
    """Each LLM is the best (ties to the cheapest, as argmax over the cost-ordered pool does)
    on a real share of the training queries someone answers, and none on most of them."""
    scores = np.array([[r.scores[n] for n in LLM_NAMES] for r in splits["train"]])
    answered = scores.max(axis=1) > 0
    best = scores[answered].argmax(axis=1)
    shares = np.bincount(best, minlength=len(LLM_NAMES)) / answered.sum()
    assert shares.min() > 0.04, dict(zip(LLM_NAMES, shares.round(3)))
    assert shares.max() < 0.60, dict(zip(LLM_NAMES, shares.round(3)))


def test_gap_ordering(splits):
    desc = describe_benchmark(splits)
    tests = [desc[k] for k in DEFAULT_TEST_SETS]
    single = np.mean([d["best_single"] for d in tests])
    per_task = np.mean([d["per_task_best"] for d in tests])
    oracle = np.mean([d["oracle"] for d in tests])
    assert 0.5 < single < per_task - 0.02 < oracle - 0.15
    for d in tests:
        assert d["best_single"] <= d["per_task_best"] + 1e-12 and d["per_task_best"] <= d["oracle"] + 1e-12
        assert d["gap"] == pytest.approx(d["oracle"] - d["best_single"])
    assert {d["best_single_llm"] for d in desc.values()} == {desc["train"]["best_single_llm"]}


def test_difficulty_is_partly_visible(splits):
    """Queries that say they are hard are answered worse than ones that say they are easy."""
    eff = effective_scores(splits["train"]).mean(axis=1)
    hard = np.array([q.startswith(("Advanced question:", "Expert-level:")) for q in (r.query for r in splits["train"])])
    easy = np.array([q.startswith(("Quick question:", "ELI5:", "Beginner here.")) for q in (r.query for r in splits["train"])])
    assert hard.sum() > 50 and easy.sum() > 50
    assert eff[easy].mean() > eff[hard].mean() + 0.2


def test_yaml_pool_matches_code():
    with open(ROOT / "conf" / "llm_pool" / "synthetic.yaml") as f:
        assert yaml.safe_load(f) == synthetic_pool()


def test_generation_is_fast():
    start = time.perf_counter()
    make_synthetic_benchmark(seed=5)
    assert time.perf_counter() - start < 2.0
