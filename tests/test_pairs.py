"""Preference pairs from scores, and the pairwise metrics built on them, on hand-built arrays.

    python -m pytest tests/test_pairs.py -q
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from router_lab.evaluation import pairwise_metrics, routing_metrics
from router_lab.pairs import pairwise_ranking_inputs, preference_pairs


def as_lists(*ts):
    return [t.tolist() for t in ts]


def test_full_scores_give_every_llm_pair_higher_score_preferred():
    scores = torch.tensor([[0.9, 0.1, 0.5]])
    row, pref, other, tie = preference_pairs(scores, torch.ones_like(scores, dtype=torch.bool))
    # pairs (0,1), (0,2), (1,2): 0 beats 1, 0 beats 2, 2 beats 1
    assert as_lists(row, pref, other, tie) == [[0, 0, 0], [0, 0, 2], [1, 2, 1], [False, False, False]]


def test_ties_are_flagged_with_the_lower_index_first():
    scores = torch.tensor([[0.5, 0.5, 0.0]])
    row, pref, other, tie = preference_pairs(scores, torch.ones(1, 3, dtype=torch.bool))
    assert as_lists(pref, other, tie) == [[0, 0, 1], [1, 2, 2], [True, False, False]]


def test_unscored_llms_make_no_pair_arena_rows():
    # row 0: battle of LLM 2 (won) vs LLM 0; row 1: tie of 1 and 3; row 2: bothbad of 0 and 3
    scores = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 1]], dtype=torch.bool)
    row, pref, other, tie = preference_pairs(scores, mask)
    assert as_lists(row, pref, other, tie) == [[0, 1, 2], [2, 1, 0], [0, 3, 3], [False, True, True]]


def test_rows_with_fewer_than_two_scored_llms_give_nothing():
    row, pref, other, tie = preference_pairs(torch.tensor([[1.0, 0.0]]), torch.tensor([[True, False]]))
    assert row.numel() == pref.numel() == other.numel() == tie.numel() == 0


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="expected the same"):
        preference_pairs(torch.zeros(2, 3), torch.ones(2, 4, dtype=torch.bool))


def test_ranking_inputs_orient_pairs_by_llm_index_and_drop_ties():
    scores = np.array([[1.0, 0.0, np.nan], [np.nan, 0.5, 0.5], [0.0, np.nan, 1.0]])
    util = np.array([[3.0, 1.0, 9.0], [0.0, 2.0, 1.0], [5.0, 0.0, 4.0]])
    ua, ub, a_pref = pairwise_ranking_inputs(util, scores)
    assert ua.tolist() == [3.0, 5.0] and ub.tolist() == [1.0, 4.0] and a_pref.tolist() == [True, False]


def test_pairwise_metrics_on_hand_built_arrays():
    # 3 rows x 3 LLMs. Non-tied pairs (util margin a-b, a preferred?):
    # row 0 scores [1, 0, 0]: (0,1) +2 T, (0,2) +1 T          (1,2) tie
    # row 1 scores [0, 1, nan]: (0,1) -1 F
    # row 2 scores [0, 0, 1]: (0,2) +1 F, (1,2) -3 F         (0,1) tie
    scores = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, np.nan], [0.0, 0.0, 1.0]])
    util = np.array([[3.0, 1.0, 2.0], [1.0, 2.0, 0.0], [2.0, 0.0, 1.0]])
    m = pairwise_metrics(util, scores)
    # positives {+2, +1}, negatives {-1, +1, -3}: pairs won 2+1.5 / 3 ... (+2 beats all 3; +1 beats 2, ties 1)
    assert m["auc"] == pytest.approx((3 + 2.5) / 6)
    # favourites among scored LLMs: row 0 -> 0 (best), row 1 -> 1 (best), row 2 -> 0 (wrong)
    assert m["top1_acc"] == pytest.approx(2 / 3)
    # best = [0, 1, 2], favourite = [0, 1, 0]: per LLM P = 1/2, 1, 0 -> 1/2; R = 1, 1, 0 -> 2/3
    assert m["selection_precision"] == pytest.approx(0.5)
    assert m["selection_recall"] == pytest.approx(2 / 3)
    f1_0 = 2 * 0.5 * 1 / 1.5
    assert m["selection_f1"] == pytest.approx((f1_0 + 1 + 0) / 3)


def test_pairwise_metrics_skip_all_tied_rows_and_single_class():
    scores = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert pairwise_metrics(np.zeros((2, 2)), scores) == {}


def test_routing_metrics_keeps_its_keys_and_adds_ranking_ones():
    out = {"scores": np.array([[1.0, 0.0], [0.0, 1.0]]), "chosen": np.array([0, 0]),
           "utilities": np.array([[0.9, 0.1], [0.6, 0.4]]), "is_probability": np.array([False, False]),
           "label": np.array([-1, -1]), "fallback": np.array([False, False])}
    m = routing_metrics(out)
    assert m["acc_predict"] == 0.5 and m["acc"] == 0.5 and m["fallback_rate"] == 0.0
    # (0,1) margins: row 0 +0.8 (0 preferred), row 1 +0.2 (1 preferred): perfectly separated
    assert m["auc"] == 1.0 and m["top1_acc"] == 0.5
    assert not math.isnan(m["selection_f1"])
