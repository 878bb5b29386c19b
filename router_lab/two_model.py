"""RouteLLM's two-model metrics (Ong et al., 2024) for any router with per-LLM utilities, when
two LLMs of the pool are read as the strong and the weak model.

    python -m router_lab.train model=knn +two_model.strong=frontier-xl +two_model.weak=tiny-chat-1b

The router's preference for the strong model on a query is ``utility[strong] -
utility[weak]``; sending the queries with the largest preference to the strong model and
the rest to the weak one, for every share of strong calls from 0 % to 100 %, traces quality
against the percentage of calls to the strong model. With ``r`` the mean effective score:

- PGR (performance gap recovered) = (r(router) - r(weak)) / (r(strong) - r(weak));
- APGR = the area under PGR over the share of strong calls in [0, 1] (trapezoids over every
  query count; a random router's APGR is 0.5);
- CPT(x %) = the smallest share of strong calls whose PGR reaches x % (NaN if none does).

``results.report_run`` adds ``<set>/router/apgr``, ``<set>/router/cpt50``, ``<set>/router/cpt80`` to
metrics.json for every test set with scores for both LLMs.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from router_lab.errors import UserError
from router_lab.metrics import effective_scores


def call_curve(preference: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of strong calls, mean score) for k = 0..n queries sent to the strong model, the
    k with the largest preference first (stable order on ties)."""
    n = len(preference)
    order = np.argsort(-np.asarray(preference, dtype=float), kind="stable")
    gain = (np.asarray(strong, float) - np.asarray(weak, float))[order]
    quality = np.mean(weak) + np.concatenate([[0.0], np.cumsum(gain)]) / n
    return np.arange(n + 1) / n, quality


def pgr(quality: np.ndarray, weak_quality: float, strong_quality: float) -> np.ndarray:
    gap = strong_quality - weak_quality
    if gap == 0:
        return np.full_like(np.asarray(quality, float), np.nan)
    return (np.asarray(quality, float) - weak_quality) / gap


def apgr(share: np.ndarray, pgr_values: np.ndarray) -> float:
    y, x = np.asarray(pgr_values, float), np.asarray(share, float)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))


def cpt(share: np.ndarray, pgr_values: np.ndarray, target: float) -> float:
    hit = np.flatnonzero(np.asarray(pgr_values, float) >= target - 1e-12)
    return float(share[hit[0]]) if hit.size else float("nan")


def two_model_metrics(utilities: np.ndarray, scores: np.ndarray, score_types: Sequence[str], strong: int,
                      weak: int) -> dict[str, float] | None:
    """APGR, CPT(50 %), CPT(80 %) and the two models' qualities on the rows that score both;
    None when no row does or the two models score the same on average."""
    eff = effective_scores(scores, score_types)
    keep = ~np.isnan(eff[:, strong]) & ~np.isnan(eff[:, weak])
    if not keep.any():
        return None
    s, w = eff[keep, strong], eff[keep, weak]
    share, quality = call_curve(utilities[keep, strong] - utilities[keep, weak], s, w)
    values = pgr(quality, float(w.mean()), float(s.mean()))
    if np.isnan(values).all():
        return None
    return {"apgr": apgr(share, values), "cpt50": cpt(share, values, 0.5), "cpt80": cpt(share, values, 0.8),
            "strong_quality": float(s.mean()), "weak_quality": float(w.mean())}


def check_spec(spec: Mapping[str, str], llm_names: Sequence[str]) -> dict[str, int]:
    """{"strong": index, "weak": index}; one error line for a name outside the pool."""
    names, idx = list(llm_names), {}
    for role in ("strong", "weak"):
        name = spec.get(role)
        if name not in names:
            raise UserError(f"two_model.{role}={name!r}: not an LLM of the pool; expected one of {names}")
        idx[role] = names.index(name)
    if idx["strong"] == idx["weak"]:
        raise UserError(f"two_model.strong and two_model.weak are both {spec.get('strong')!r}; expected two LLMs")
    return idx


def two_model_report(outputs: Mapping[str, Mapping[str, np.ndarray]], llm_names: Sequence[str],
                     spec: Mapping[str, str] | None) -> dict[str, float]:
    """Flat metrics for every test set (``<set>/router/apgr``, ...); {} without ``spec``."""
    if not spec:
        return {}
    idx = check_spec(spec, llm_names)
    out: dict[str, float] = {}
    for set_name, o in outputs.items():
        if "utilities" not in o or "scores" not in o or o["scores"].ndim != 2:
            continue
        types = ["probability" if p else "multi_attempt" for p in o["is_probability"]]
        m = two_model_metrics(np.asarray(o["utilities"], float), o["scores"], types, idx["strong"], idx["weak"])
        for k, v in (m or {}).items():
            out[f"{set_name}/router/{k}"] = v
    return out
