"""Routing metrics: numpy arrays in, python floats out.

    from router_lab.metrics import acc_predict, routing_accuracy, aiq
    python -m pytest tests/test_metrics.py -q

Conventions shared by every function:

- ``chosen``: int array (N,), the index of the LLM the router picked for each row.
- ``scores``: float array (N, L), per-LLM quality. NaN means "this LLM was not scored
  for this row" (preference data); such entries are ignored, and a row whose chosen LLM
  is unscored is left out of the per-row means (there is nothing to credit it with).
- ``score_types``: one string for all rows or a sequence of N strings, each
  ``"multi_attempt"`` (the raw score is what the user gets) or ``"probability"`` (the
  score is a probability of success, binarised ``score > 0`` as RouterDC's evaluation does).
- ``costs``: (N, L) per-row costs or an (L,) per-LLM cost vector.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

SCORE_TYPES = ("multi_attempt", "probability")


def _probability_rows(score_types: str | Sequence[str], n_rows: int) -> np.ndarray:
    """Boolean (N,) mask of rows whose score type is ``probability``."""
    if isinstance(score_types, str):
        types = np.full(n_rows, score_types, dtype=object)
    else:
        types = np.asarray(list(score_types), dtype=object)
        if types.shape != (n_rows,):
            raise ValueError(f"score_types has {types.size} entries; expected one string or {n_rows} (one per row)")
    unknown = sorted(set(types.tolist()) - set(SCORE_TYPES))
    if unknown:
        raise ValueError(f"score_types contains {unknown}; expected each to be one of {list(SCORE_TYPES)}")
    return types == "probability"


def _chosen_values(values: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The (N,) entries values[i, chosen[i]]."""
    chosen = np.asarray(chosen, dtype=int)
    return values[np.arange(len(chosen)), chosen]


def _nanmean_or_nan(values: np.ndarray) -> float:
    """Mean of the non-NaN values; NaN (without numpy's empty-slice warning) if there are none."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")


def _row_nanmax(values: np.ndarray) -> np.ndarray:
    """Per-row max ignoring NaN; NaN for rows with no score at all."""
    scored = ~np.isnan(values).all(axis=1)
    out = np.full(values.shape[0], np.nan)
    out[scored] = np.nanmax(values[scored], axis=1)
    return out


def effective_scores(scores: np.ndarray, score_types: str | Sequence[str]) -> np.ndarray:
    """The score a user actually gets: probability rows binarised at > 0, multi_attempt rows raw; NaN kept."""
    scores = np.asarray(scores, dtype=float)
    probability = _probability_rows(score_types, scores.shape[0])
    binarised = np.where(scores > 0, 1.0, 0.0)
    binarised[np.isnan(scores)] = np.nan
    return np.where(probability[:, None], binarised, scores)


def acc_predict(chosen: np.ndarray, scores: np.ndarray, score_types: str | Sequence[str]) -> float:
    """RouterDC's acc_predict: mean effective score of the chosen LLM."""
    return _nanmean_or_nan(_chosen_values(effective_scores(scores, score_types), chosen))


def routing_accuracy(chosen: np.ndarray, scores: np.ndarray) -> float:
    """Fraction of rows whose chosen LLM has the row's best raw score (ties with the best count as correct)."""
    scores = np.asarray(scores, dtype=float)
    chosen_score = _chosen_values(scores, chosen)
    kept = ~np.isnan(chosen_score)
    if not kept.any():
        return float("nan")
    return float((chosen_score[kept] >= _row_nanmax(scores)[kept]).mean())


#: RankRouter calls routing accuracy "top-1 accuracy".
top1_accuracy = routing_accuracy


def oracle_acc_predict(scores: np.ndarray, score_types: str | Sequence[str]) -> float:
    """acc_predict of a router that always picks the best LLM: mean over rows of the max effective score."""
    return _nanmean_or_nan(_row_nanmax(effective_scores(scores, score_types)))


def classification_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Fraction of rows where the predicted label equals the true label."""
    return float(np.mean(np.asarray(pred) == np.asarray(true)))


def macro_f1(pred: np.ndarray, true: np.ndarray, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-label F1 (labels with no support or prediction score 0)."""
    return float(f1_score(np.asarray(true), np.asarray(pred), labels=labels, average="macro", zero_division=0))


def mean_cost(chosen: np.ndarray, costs: np.ndarray) -> float:
    """Mean cost of the chosen LLMs; costs (N, L) per row or (L,) per LLM."""
    costs = np.asarray(costs, dtype=float)
    chosen = np.asarray(chosen, dtype=int)
    per_row = costs[chosen] if costs.ndim == 1 else _chosen_values(costs, chosen)
    return float(per_row.mean())


def selection_precision_recall_f1(chosen: np.ndarray, scores: np.ndarray) -> tuple[float, float, float]:
    """Macro precision, recall, F1 of chosen vs. the best LLM (first max), one-vs-rest per LLM seen in either."""
    scores = np.asarray(scores, dtype=float)
    chosen = np.asarray(chosen, dtype=int)
    scored = ~np.isnan(scores).all(axis=1)
    best = np.nanargmax(scores[scored], axis=1)
    chosen = chosen[scored]
    labels = np.union1d(best, chosen)
    precision, recall, f1, _ = precision_recall_fscore_support(
        best, chosen, labels=labels, average="macro", zero_division=0
    )
    return float(precision), float(recall), float(f1)


def pairwise_auc(score_a: np.ndarray, score_b: np.ndarray, a_preferred: np.ndarray) -> float:
    """ROC AUC of the margin score_a - score_b for predicting a_preferred; NaN if only one class is present."""
    a_preferred = np.asarray(a_preferred, dtype=bool)
    if a_preferred.all() or not a_preferred.any():
        return float("nan")
    margin = np.asarray(score_a, dtype=float) - np.asarray(score_b, dtype=float)
    return float(roc_auc_score(a_preferred, margin))


def willingness_to_pay_choice(pred_quality: np.ndarray, costs: np.ndarray, lam: float) -> np.ndarray:
    """Per row, the LLM maximising lam * predicted quality - cost (lam = what one unit of quality is worth)."""
    utility = lam * np.asarray(pred_quality, dtype=float) - np.asarray(costs, dtype=float)
    return np.argmax(utility, axis=1)


def cost_quality_curve(
    pred_quality: np.ndarray,
    true_scores: np.ndarray,
    costs: np.ndarray,
    score_types: str | Sequence[str],
    lambdas: Sequence[float],
) -> list[dict]:
    """For each lambda, the mean cost and acc_predict of willingness-to-pay routing: [{lambda, cost, quality}]."""
    curve = []
    for lam in lambdas:
        chosen = willingness_to_pay_choice(pred_quality, costs, lam)
        curve.append(
            {
                "lambda": float(lam),
                "cost": mean_cost(chosen, costs),
                "quality": acc_predict(chosen, true_scores, score_types),
            }
        )
    return curve


def non_decreasing_convex_hull(costs: Sequence[float], qualities: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """RouterBench's non-decreasing convex hull of (cost, quality) points, sorted by cost."""
    costs = np.asarray(costs, dtype=float)
    qualities = np.asarray(qualities, dtype=float)
    if costs.size == 0:
        raise ValueError("non_decreasing_convex_hull needs at least one (cost, quality) point")
    # Adding (max cost, max quality) makes the upper hull flat after the best point: paying more than
    # the cheapest best router buys nothing, so dearer points are replaced by that quality.
    costs = np.append(costs, costs.max())
    qualities = np.append(qualities, qualities.max())
    unique_costs = np.unique(costs)
    best_at_cost = np.array([qualities[costs == c].max() for c in unique_costs])
    hull: list[tuple[float, float]] = []
    for point in zip(unique_costs, best_at_cost):
        # Pop the last hull point while it lies on or below the chord to the new point (monotone chain).
        while len(hull) >= 2:
            (c0, q0), (c1, q1) = hull[-2], hull[-1]
            if (c1 - c0) * (point[1] - q0) - (q1 - q0) * (point[0] - c0) >= 0:
                hull.pop()
            else:
                break
        hull.append(point)
    hull_costs, hull_qualities = (np.array(axis, dtype=float) for axis in zip(*hull))
    return hull_costs, hull_qualities


def aiq(costs: Sequence[float], qualities: Sequence[float]) -> float:
    """RouterBench's Average Improvement in Quality: area under the non-decreasing hull over the cost range."""
    hull_costs, hull_qualities = non_decreasing_convex_hull(costs, qualities)
    if hull_costs.size == 1:
        return float(hull_qualities[0])
    area = np.sum((hull_qualities[1:] + hull_qualities[:-1]) / 2 * np.diff(hull_costs))
    return float(area / (hull_costs[-1] - hull_costs[0]))


def json_safe(obj):
    """``obj`` with NaN and infinities as ``null`` (numpy scalars as Python numbers): a
    ``metrics.json`` is always valid JSON."""
    import math

    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(obj, path) -> None:
    """``obj`` as strict JSON (see :func:`json_safe`) to ``path``, via a temp file and a rename."""
    import json
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False))
    os.replace(tmp, path)
