"""Evaluation shared by every router family, as pure functions on arrays: per-set routing
metrics, baselines, group averages and the results table.

A test set's ``outputs`` is one dict of arrays: the router's decisions (``decision_arrays`` of
its ``decide(batch)``, batches concatenated in order: ``chosen``, ``utilities``,
``confidence``, ``fallback``, ``pred_label``) merged with the set's ``ground_truth``
(``scores``, ``is_probability``, ``costs``, ``label``, ``task``; ``ground_truth(split)`` reads
them off a split, ``batch_truth(batch)`` off a validation batch). ``evaluate(outputs by set,
training ground truth, groups)`` returns the flat metrics; nothing here sees a DataModule.

Metric names in ``metrics.json`` are flat: ``<test set>/<method>/<metric>``, where method
is ``router`` or a baseline (``random``, ``best_single``, ``best_per_task``, ``oracle``;
``majority`` for label-only data) and metric is ``acc_predict`` (the chosen LLM's score,
binarised for probability data as RouterDC does), ``acc`` (chose a best LLM), ``cost``,
``auc`` / ``top1_acc`` / ``selection_precision|recall|f1`` (ranking over the scored LLMs of
each row, so preference data gets them too; see ``pairwise_metrics``),
``accuracy`` / ``macro_f1`` (category classification) or ``fallback_rate``. Group averages
(``in_distribution``, ``out_of_distribution`` or the configured groups) are the mean over
their sets, as RouterDC averages datasets. All values are fractions; tables print percent.

Baselines: ``random`` is the expected score of a uniform choice; ``best_single`` is the LLM
with the best mean score on the training data; ``best_per_task`` knows each query's task and
picks the LLM that is best on that task's test set (the ceiling of task-identity routing);
``oracle`` picks a best LLM for every query.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import torch

from router_lab import metrics as M
from router_lab.pairs import pairwise_ranking_inputs

METHODS = ("router", "random", "best_single", "best_per_task", "oracle", "majority")


def ground_truth(split) -> dict[str, np.ndarray]:
    """One split's ground truth as arrays (the ``truth`` every function here takes):
    ``scores`` (N, L; NaN = unscored), ``is_probability`` (N,), ``costs`` (N, L) when known,
    ``label`` (N,) category index (-1 unknown), ``task`` (N,) task names."""
    truth = {"scores": np.asarray(split.scores), "label": np.asarray(split.labels),
             "is_probability": np.array([t == "probability" for t in split.score_types], dtype=bool),
             "task": np.array(split.tasks, dtype=object)}
    if split.costs is not None:
        truth["costs"] = np.asarray(split.costs)
    return truth


def batch_truth(batch: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The ground truth a batch carries (validation), in the schema of ``ground_truth``."""
    scores = torch.where(batch["score_mask"], batch["scores"], torch.nan) if batch["scores"].numel() \
        else batch["scores"]
    keys = {"scores": scores, "is_probability": batch["is_probability"], "label": batch["label"]}
    if "costs" in batch:
        keys["costs"] = batch["costs"]
    return {k: v.detach().cpu().numpy() for k, v in keys.items()}


#: decide() key -> decision array name (``chosen`` the LLM index, ``pred_label`` the category)
DECISION_KEYS = {"llm": "chosen", "utilities": "utilities", "confidence": "confidence", "fallback": "fallback",
                 "category": "pred_label"}


def decision_arrays(decisions: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A family's ``decide(batch)`` as arrays: ``chosen``, ``utilities``, ``confidence``,
    ``fallback`` and (category routers) ``pred_label``."""
    out = {}
    for key, name in DECISION_KEYS.items():
        if key in decisions:
            v = decisions[key].detach()
            out[name] = (v.float() if v.is_floating_point() else v).cpu().numpy()
    return out


def concat(parts: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-batch dicts of arrays -> one dict (rows in order)."""
    parts = list(parts)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def _types(is_probability: np.ndarray) -> list[str]:
    return ["probability" if p else "multi_attempt" for p in is_probability]


def routing_metrics(out: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The router's metrics on one set from collected outputs."""
    res: dict[str, float] = {}
    scores = out.get("scores")
    if scores is not None and scores.size and not np.isnan(scores).all():
        full = ~np.isnan(scores).any(axis=1)
        if full.any():
            ch, sc = out["chosen"][full].astype(int), scores[full]
            types = _types(out["is_probability"][full])
            res["acc_predict"] = M.acc_predict(ch, sc, types)
            res["acc"] = M.routing_accuracy(ch, sc)
            if "costs" in out:
                res["cost"] = M.mean_cost(ch, out["costs"][full])
    if scores is not None and scores.size and out.get("utilities") is not None \
            and out["utilities"].shape == scores.shape:
        res.update(pairwise_metrics(out["utilities"], scores))
    labels = out.get("label")
    if "pred_label" in out and labels is not None and (labels >= 0).any():
        known = labels >= 0
        res["accuracy"] = M.classification_accuracy(out["pred_label"][known], labels[known])
        res["macro_f1"] = M.macro_f1(out["pred_label"][known], labels[known])
    if "fallback" in out:
        res["fallback_rate"] = float(np.mean(out["fallback"]))
    return res


def pairwise_metrics(utilities: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Ranking metrics over the LLMs scored in each row (NaN = unscored), so they work on
    preference data (two LLMs per row) and full score data alike:

    ``auc``: pairwise ranking AUC of utility differences over every non-tied scored pair;
    ``top1_acc``: the router's favourite among a row's scored LLMs (argmax of utilities
    restricted to them) has the row's best score; ``selection_precision`` / ``_recall`` /
    ``_f1``: macro P/R/F1 of that favourite vs the best LLM. The last four count only rows
    with at least two scored LLMs that do not all tie (nothing to get right otherwise)."""
    res: dict[str, float] = {}
    scores = np.asarray(scores, dtype=float)
    util = np.asarray(utilities, dtype=float)
    ua, ub, a_preferred = pairwise_ranking_inputs(util, scores)
    if a_preferred.size and a_preferred.any() and not a_preferred.all():
        res["auc"] = M.pairwise_auc(ua, ub, a_preferred)
    scored = ~np.isnan(scores)
    with np.errstate(all="ignore"):
        hi = np.where(scored, scores, -np.inf).max(1)
        lo = np.where(scored, scores, np.inf).min(1)
    rows = (scored.sum(1) >= 2) & (hi > lo)
    if rows.any():
        favourite = np.where(scored[rows], util[rows], -np.inf).argmax(1)
        res["top1_acc"] = M.top1_accuracy(favourite, scores[rows])
        p, r, f1 = M.selection_precision_recall_f1(favourite, scores[rows])
        res.update(selection_precision=p, selection_recall=r, selection_f1=f1)
    return res


def selection_score(m: Mapping[str, float]) -> float:
    """The single 'higher is better' number checkpoints and sweeps select on."""
    for k in ("acc_predict", "accuracy", "auc"):
        if k in m and not math.isnan(m[k]):
            return float(m[k])
    return float("nan")


def _has_scores(truth: Mapping[str, np.ndarray]) -> bool:
    return truth["scores"].size > 0 and not np.isnan(truth["scores"]).all()


def baseline_metrics(train: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Baselines on one test set (see module docstring), from the ``ground_truth`` of the
    training split and of the test set."""
    out: dict[str, dict[str, float]] = {}
    if _has_scores(test) and _has_scores(train):
        full = ~np.isnan(test["scores"]).any(axis=1)
        if full.any():
            sc = test["scores"][full]
            types = _types(test["is_probability"][full])
            eff = M.effective_scores(sc, types)
            costs = test["costs"][full] if "costs" in test else None
            n, l = sc.shape

            def pack(chosen: np.ndarray | None, acc_predict: float | None = None, cost: float | None = None):
                d = {"acc_predict": M.acc_predict(chosen, sc, types) if acc_predict is None else acc_predict}
                if chosen is not None:
                    d["acc"] = M.routing_accuracy(chosen, sc)
                    if costs is not None:
                        d["cost"] = M.mean_cost(chosen, costs)
                elif cost is not None:
                    d["cost"] = cost
                return d

            out["random"] = pack(None, acc_predict=float(eff.mean()),
                                 cost=float(costs.mean()) if costs is not None else None)
            out["random"]["acc"] = float((sc >= sc.max(1, keepdims=True)).mean())
            train_mean = np.nanmean(M.effective_scores(train["scores"], _types(train["is_probability"])), axis=0)
            out["best_single"] = pack(np.full(n, int(np.nanargmax(train_mean))))
            tasks = test["task"][full]
            per_task = np.zeros(n, dtype=int)
            for t in np.unique(tasks):
                m = tasks == t
                per_task[m] = int(eff[m].mean(axis=0).argmax())
            out["best_per_task"] = pack(per_task)
            out["oracle"] = pack(None, acc_predict=M.oracle_acc_predict(sc, types))
            out["oracle"]["acc"] = 1.0
            if costs is not None:
                # The cheapest of the best LLMs: the oracle's cost.
                best = eff >= eff.max(1, keepdims=True) - 1e-9
                out["oracle"]["cost"] = float(np.where(best, costs, np.inf).min(1).mean())
    known, train_labels = test["label"] >= 0, train["label"]
    if (train_labels >= 0).any() and known.any() and not _has_scores(test):
        counts = np.bincount(train_labels[train_labels >= 0])
        maj = np.full(int(known.sum()), int(counts.argmax()))
        out["majority"] = {"accuracy": M.classification_accuracy(maj, test["label"][known]),
                           "macro_f1": M.macro_f1(maj, test["label"][known])}
        out["random"] = {"accuracy": 1.0 / len(counts)}
    return out


def evaluate(outputs: Mapping[str, Mapping[str, np.ndarray]], train: Mapping[str, np.ndarray],
             groups: Mapping[str, list] | None = None) -> dict[str, float]:
    """Flat metrics for every test set and group, the router's and the baselines':
    ``outputs`` maps a test set to its decisions and ground truth (one dict of arrays,
    ``decision_arrays`` | ``ground_truth``), ``train`` is the training split's ground truth."""
    flat: dict[str, float] = {}
    per_set: dict[str, dict[str, dict[str, float]]] = {}
    for name, out in outputs.items():
        per_set[name] = {"router": routing_metrics(out)} if "chosen" in out else {}
        per_set[name].update(baseline_metrics(train, out))
    for name, methods in per_set.items():
        for method, ms in methods.items():
            for k, v in ms.items():
                flat[f"{name}/{method}/{k}"] = float(v)
    for group, members in (groups or {}).items():
        for method in METHODS:
            for k in ("acc_predict", "acc", "cost", "accuracy", "macro_f1"):
                vals = [per_set[m][method][k] for m in members if k in per_set[m].get(method, {})]
                if vals and len(vals) == len(members):
                    flat[f"avg_{group}/{method}/{k}"] = float(np.mean(vals))
    return flat


def results_table(flat: Mapping[str, float], set_names: Iterable[str], groups: Mapping[str, list] | None = None,
                  title: str = "router vs baselines") -> str:
    """A plain-text table: one row per test set (and group average), one column per
    method, showing acc_predict (or accuracy for label-only data) in percent."""
    rows = list(set_names) + [f"avg_{g}" for g in (groups or {})]
    # The headline metric the data supports: acc_predict (full scores), accuracy (labels),
    # else pairwise AUC (preference pairs such as Chatbot-Arena).
    metric = next((m for m in ("acc_predict", "accuracy", "auc") if any(k.endswith(f"/{m}") for k in flat)),
                  "acc_predict")
    methods = [m for m in METHODS if any(f"{r}/{m}/{metric}" in flat for r in rows)]
    has_cost = any(f"{r}/router/cost" in flat for r in rows)
    head = ["test set"] + list(methods) + (["router cost"] if has_cost else []) + (["router acc"] if metric == "acc_predict" else [])
    table = [head]
    for r in rows:
        line = [r]
        for m in methods:
            v = flat.get(f"{r}/{m}/{metric}")
            line.append("" if v is None else f"{100 * v:.2f}")
        if has_cost:
            v = flat.get(f"{r}/router/cost")
            line.append("" if v is None else f"{v:.4g}")
        if metric == "acc_predict":
            v = flat.get(f"{r}/router/acc")
            line.append("" if v is None else f"{100 * v:.2f}")
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    sep = "-" * (sum(widths) + 2 * (len(widths) - 1))
    lines = [f"{title} ({metric}, %)", sep, fmt(table[0]), sep]
    for i, row in enumerate(table[1:]):
        if rows[i].startswith("avg_") and not rows[i - 1].startswith("avg_"):
            lines.append(sep)
        lines.append(fmt(row))
    lines.append(sep)
    return "\n".join(lines)
