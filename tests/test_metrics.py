"""Routing metrics on hand-built arrays; every expected value is worked out in the comments."""
import math

import numpy as np
import pytest

from router_lab.metrics import (
    acc_predict,
    aiq,
    classification_accuracy,
    cost_quality_curve,
    effective_scores,
    macro_f1,
    mean_cost,
    non_decreasing_convex_hull,
    oracle_acc_predict,
    pairwise_auc,
    routing_accuracy,
    selection_precision_recall_f1,
    top1_accuracy,
)

NAN = float("nan")

# 3 queries x 3 LLMs. Row 0 is multi_attempt (raw score counts); rows 1 and 2 are probability
# rows, binarised at > 0:
#   effective = [[0.2, 0.9, 0.5],
#                [0.0, 1.0, 1.0],
#                [1.0, 0.0, 1.0]]
SCORES = np.array(
    [
        [0.2, 0.9, 0.5],
        [0.0, 0.3, 0.3],
        [1.0, 0.0, 0.4],
    ]
)
TYPES = ["multi_attempt", "probability", "probability"]
CHOSEN = np.array([2, 1, 2])

# Preference-style rows: NaN = LLM not scored. Row 2 has no score at all.
NAN_SCORES = np.array(
    [
        [NAN, 0.8, 0.2],
        [0.5, NAN, NAN],
        [NAN, NAN, NAN],
    ]
)
NAN_CHOSEN = np.array([1, 1, 0])


def test_effective_scores_binarises_only_probability_rows():
    expected = np.array([[0.2, 0.9, 0.5], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(effective_scores(SCORES, TYPES), expected)


def test_effective_scores_single_string_applies_to_all_rows_and_keeps_nan():
    got = effective_scores(np.array([[0.3, NAN, 0.0]]), "probability")
    np.testing.assert_array_equal(got, np.array([[1.0, NAN, 0.0]]))
    np.testing.assert_array_equal(effective_scores(SCORES, "multi_attempt"), SCORES)


def test_effective_scores_rejects_unknown_type_and_wrong_length():
    with pytest.raises(ValueError, match="one of"):
        effective_scores(SCORES, "accuracy")
    with pytest.raises(ValueError, match="expected one string or 3"):
        effective_scores(SCORES, ["probability", "probability"])


def test_acc_predict_uses_effective_scores():
    # chosen effective scores: 0.5, 1.0, 1.0 -> 2.5 / 3. On raw scores it would be
    # (0.5 + 0.3 + 0.4) / 3 = 0.4: binarisation changes the answer.
    assert acc_predict(CHOSEN, SCORES, TYPES) == pytest.approx(2.5 / 3)
    assert acc_predict(CHOSEN, SCORES, "multi_attempt") == pytest.approx(0.4)


def test_acc_predict_leaves_out_rows_whose_chosen_llm_is_unscored():
    # Row 0 chose LLM 1 (0.8); rows 1 and 2 chose unscored LLMs -> mean over row 0 only.
    assert acc_predict(NAN_CHOSEN, NAN_SCORES, "multi_attempt") == pytest.approx(0.8)
    assert math.isnan(acc_predict(np.array([0]), np.array([[NAN, 1.0]]), "multi_attempt"))


def test_routing_accuracy_counts_ties_with_best_as_correct():
    # row 0: 0.5 < 0.9 wrong; row 1: 0.3 ties the max 0.3 -> correct; row 2: 0.4 < 1.0 wrong.
    assert routing_accuracy(CHOSEN, SCORES) == pytest.approx(1 / 3)
    assert top1_accuracy is routing_accuracy


def test_routing_accuracy_ignores_nan():
    # row 0: 0.8 is the max of the scored {0.8, 0.2} -> correct; rows 1, 2 chose unscored LLMs.
    assert routing_accuracy(NAN_CHOSEN, NAN_SCORES) == pytest.approx(1.0)


def test_oracle_acc_predict():
    # max effective per row: 0.9, 1.0, 1.0 -> 2.9 / 3.
    assert oracle_acc_predict(SCORES, TYPES) == pytest.approx(2.9 / 3)
    # NaN rows: row 0 max 0.8, row 1 max 0.5, row 2 unscored -> (0.8 + 0.5) / 2.
    assert oracle_acc_predict(NAN_SCORES, "multi_attempt") == pytest.approx(0.65)


def test_classification_accuracy_and_macro_f1():
    pred = np.array([0, 1, 1, 2])
    true = np.array([0, 1, 2, 2])
    # 3 of 4 match.
    assert classification_accuracy(pred, true) == pytest.approx(0.75)
    # label 0: P=1 R=1 F=1; label 1: P=1/2 R=1 F=2/3; label 2: P=1 R=1/2 F=2/3 -> (1 + 4/3) / 3.
    assert macro_f1(pred, true) == pytest.approx(7 / 9)
    # an extra label never seen scores F=0 and dilutes the mean: (7/3) / 4.
    assert macro_f1(pred, true, labels=[0, 1, 2, 3]) == pytest.approx(7 / 12)


def test_mean_cost_per_llm_vector_and_per_row_matrix():
    # per-LLM [1, 10, 100], chosen [2, 1, 2] -> (100 + 10 + 100) / 3.
    assert mean_cost(CHOSEN, np.array([1.0, 10.0, 100.0])) == pytest.approx(70.0)
    # per-row: row 0 LLM 2 -> 3, row 1 LLM 1 -> 5, row 2 LLM 2 -> 9 -> 17 / 3.
    per_row = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    assert mean_cost(CHOSEN, per_row) == pytest.approx(17 / 3)


def test_selection_precision_recall_f1_first_max_breaks_ties():
    # truth (first max of raw scores): row 0 -> 1, row 1 -> 1 (tie 0.3/0.3, first), row 2 -> 0.
    # pred = [2, 1, 2]; labels = {0, 1, 2}.
    #   LLM 0: truth {2}, pred {}     -> P=0, R=0, F=0
    #   LLM 1: truth {0, 1}, pred {1} -> P=1, R=1/2, F=2/3
    #   LLM 2: truth {}, pred {0, 2}  -> P=0, R=0, F=0
    precision, recall, f1 = selection_precision_recall_f1(CHOSEN, SCORES)
    assert (precision, recall, f1) == pytest.approx((1 / 3, 1 / 6, 2 / 9))


def test_selection_precision_recall_f1_ignores_nan():
    # row 0 truth 1 (0.8 > 0.2, NaN ignored), row 1 truth 0, row 2 unscored -> dropped.
    # pred = [1, 1]; LLM 0: truth {1}, pred {} -> 0, 0, 0; LLM 1: truth {0}, pred {0, 1} -> 1/2, 1, 2/3.
    precision, recall, f1 = selection_precision_recall_f1(NAN_CHOSEN, NAN_SCORES)
    assert (precision, recall, f1) == pytest.approx((1 / 4, 1 / 2, 1 / 3))


def test_pairwise_auc():
    score_b = np.zeros(4)
    # margins [3, 1, 2, 0]; positives {3, 2} all beat negatives {1, 0} -> 1.
    assert pairwise_auc(np.array([3.0, 1.0, 2.0, 0.0]), score_b, np.array([True, False, True, False])) == 1.0
    # positives {3, 1} vs negatives {2, 0}: 3>2, 3>0, 1<2, 1>0 -> 3 of 4 pairs.
    assert pairwise_auc(np.array([3.0, 1.0, 2.0, 0.0]), score_b, np.array([True, True, False, False])) == 0.75
    assert math.isnan(pairwise_auc(np.array([1.0, 2.0]), np.zeros(2), np.array([True, True])))


# 2 queries x 2 LLMs: LLM 0 is free, LLM 1 costs 1.
PRED_QUALITY = np.array([[0.5, 0.9], [0.8, 0.85]])
LLM_COSTS = np.array([0.0, 1.0])
TRUE_SCORES = np.array([[0.0, 1.0], [1.0, 1.0]])


def test_cost_quality_curve():
    # policy.choose_llm (lambda * quality - cost):
    # lam=1:   row 0: 0.5 vs 0.9-1=-0.1 -> 0;  row 1: 0.8 vs -0.15 -> 0
    # lam=10:  row 0: 5 vs 8 -> 1;              row 1: 8 vs 7.5 -> 0
    # lam=100: row 0: 50 vs 89 -> 1;            row 1: 80 vs 84 -> 1 quality = mean true score of the chosen LLM.
    curve = cost_quality_curve(PRED_QUALITY, TRUE_SCORES, LLM_COSTS, "multi_attempt", [1.0, 10.0, 100.0])
    assert curve == [
        {"lambda": 1.0, "cost": 0.0, "quality": 0.5},
        {"lambda": 10.0, "cost": 0.5, "quality": 1.0},
        {"lambda": 100.0, "cost": 1.0, "quality": 1.0},
    ]


# Four routers, drawn on (cost, quality):
#   (0, 0.2)  (1, 0.3)  (2, 0.8)  (3, 0.5)
# (1, 0.3) lies below the chord (0, 0.2)-(2, 0.8), which passes 0.5 at cost 1: dropped.
# (3, 0.5) is dominated by the cheaper (2, 0.8): replaced by quality 0.8.
# Hull: (0, 0.2) (2, 0.8) (3, 0.8). Area = (0.2 + 0.8)/2 * 2 + 0.8 * 1 = 1.8; cost range 3 -> AIQ 0.6.
HULL_COSTS = [3.0, 1.0, 0.0, 2.0]  # unsorted on purpose
HULL_QUALITIES = [0.5, 0.3, 0.2, 0.8]


def test_non_decreasing_convex_hull():
    hull_costs, hull_qualities = non_decreasing_convex_hull(HULL_COSTS, HULL_QUALITIES)
    np.testing.assert_allclose(hull_costs, [0.0, 2.0, 3.0])
    np.testing.assert_allclose(hull_qualities, [0.2, 0.8, 0.8])


def test_non_decreasing_convex_hull_drops_collinear_and_same_cost_points():
    # (1, 0.5) is on the segment (0, 0)-(2, 1); at cost 1 only the better 0.5 of {0.1, 0.5} matters.
    hull_costs, hull_qualities = non_decreasing_convex_hull([0.0, 1.0, 1.0, 2.0], [0.0, 0.1, 0.5, 1.0])
    np.testing.assert_allclose(hull_costs, [0.0, 2.0])
    np.testing.assert_allclose(hull_qualities, [0.0, 1.0])


def test_aiq():
    assert aiq(HULL_COSTS, HULL_QUALITIES) == pytest.approx(0.6)
    # straight line from (0, 0) to (2, 1): area 1 over range 2.
    assert aiq([0.0, 1.0, 2.0], [0.0, 0.5, 1.0]) == pytest.approx(0.5)


def test_aiq_single_cost_is_the_best_quality_there():
    assert aiq([1.0], [0.7]) == pytest.approx(0.7)
    assert aiq([1.0, 1.0], [0.3, 0.7]) == pytest.approx(0.7)


def test_aiq_over_a_given_cost_range():
    # Hull (0, 0.2) (2, 0.8) (3, 0.8) as above.
    costs, quals = [0, 1, 2, 3], [0.2, 0.3, 0.8, 0.5]
    # Over [1, 4]: trapezoid 1..2 = (0.5 + 0.8)/2 = 0.65, then flat 0.8 for 2 -> 0.65 + 1.6 = 2.25; / 3 = 0.75
    assert aiq(costs, quals, (1.0, 4.0)) == pytest.approx(0.75)
    # A hull that starts at cost 1 has quality 0 over [0, 1]: (0 + 0.8 * 1) / 2 over [0, 2] with points (1, .8)
    assert aiq([1.0], [0.8], (0.0, 2.0)) == pytest.approx(0.4)
    assert aiq(costs, quals, (0.0, 3.0)) == pytest.approx(aiq(costs, quals))


def test_hull_quality_at_and_cost_to_reach():
    from router_lab.metrics import cost_to_reach, hull_quality_at

    costs, quals = [0, 1, 2, 3], [0.2, 0.3, 0.8, 0.5]
    np.testing.assert_allclose(hull_quality_at(costs, quals, [0.0, 1.0, 2.5, 9.0]), [0.2, 0.5, 0.8, 0.8])
    assert hull_quality_at([1.0, 2.0], [0.5, 0.6], 0.5) == 0.0  # cheaper than any point: out of reach
    # 0.5 is reached at cost 1 on the chord (0, 0.2)-(2, 0.8); 0.9 never.
    assert cost_to_reach(costs, quals, 0.5) == pytest.approx(1.0)
    assert cost_to_reach(costs, quals, 0.1) == 0.0
    assert math.isnan(cost_to_reach(costs, quals, 0.9))
