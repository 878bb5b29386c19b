"""Preference pairs from per-LLM scores: one code path for arena battles (two LLMs scored
per row) and full score data (split2, RouterBench, synthetic: every LLM scored).

    from router_lab.pairs import preference_pairs
    python -m pytest tests/test_pairs.py -q

Within a row, every two scored LLMs make a pair: the strictly higher score is preferred,
equal scores are a tie (then ``preferred`` is the lower LLM index, so a tie has one fixed
orientation). Unscored LLMs (``mask`` False) make no pair.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def preference_pairs(scores: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(B, L) scores and scored-mask -> ``(row, preferred, other, is_tie)``, each (P,), over
    all pairs of LLMs scored in the same row; ordered by row, then LLM pair (i < j)."""
    scores = torch.as_tensor(scores)
    mask = torch.as_tensor(mask, dtype=torch.bool, device=scores.device)
    if scores.shape != mask.shape or scores.ndim != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and mask {tuple(mask.shape)}; expected the same (B, L)")
    n_llms = scores.shape[1]
    i, j = torch.triu_indices(n_llms, n_llms, offset=1, device=scores.device)
    both = mask[:, i] & mask[:, j]  # (B, pairs)
    row, k = both.nonzero(as_tuple=True)
    a, b = i[k], j[k]
    sa, sb = scores[row, a], scores[row, b]
    b_wins = sb > sa
    preferred = torch.where(b_wins, b, a)
    other = torch.where(b_wins, a, b)
    return row, preferred, other, sa == sb


def pairwise_ranking_inputs(utilities: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``metrics.pairwise_auc``: over the non-tied scored pairs (i < j) of every row,
    the router's utility of LLM i, of LLM j, and whether i has the higher score. NaN in
    ``scores`` marks an unscored LLM."""
    scores = np.asarray(scores, dtype=float)
    mask = ~np.isnan(scores)
    row, pref, other, tie = (t.numpy() for t in preference_pairs(torch.from_numpy(np.nan_to_num(scores)),
                                                                  torch.from_numpy(mask)))
    keep = ~tie
    row, pref, other = row[keep], pref[keep], other[keep]
    lo, hi = np.minimum(pref, other), np.maximum(pref, other)
    util = np.asarray(utilities, dtype=float)
    return util[row, lo], util[row, hi], pref == lo
