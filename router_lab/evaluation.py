"""Evaluation shared by every router family: per-set routing metrics, baselines, group
averages and the results table.

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
from collections import defaultdict
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np
import torch

from router_lab import metrics as M
from router_lab.pairs import pairwise_ranking_inputs

if TYPE_CHECKING:
    from router_lab.data.datamodule import RouterDataModule, RoutingSplit

METHODS = ("router", "random", "best_single", "best_per_task", "oracle", "majority")


class OutputCollector:
    """Accumulates a router's per-batch decisions with the batch's ground truth."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, batch: Mapping[str, torch.Tensor], utilities: torch.Tensor, chosen: torch.Tensor,
            confidence: torch.Tensor | None = None, pred_label: torch.Tensor | None = None,
            fallback: torch.Tensor | None = None) -> None:
        put = lambda k, v: self.parts[k].append(v.detach().float().cpu().numpy() if v.is_floating_point()
                                                else v.detach().cpu().numpy())
        put("index", batch["index"])
        put("scores", torch.where(batch["score_mask"], batch["scores"], torch.nan) if batch["scores"].numel()
            else batch["scores"])
        put("is_probability", batch["is_probability"])
        put("label", batch["label"])
        put("task_id", batch["task_id"])
        if "costs" in batch:
            put("costs", batch["costs"])
        put("utilities", utilities)
        put("chosen", chosen)
        if confidence is not None:
            put("confidence", confidence)
        if pred_label is not None:
            put("pred_label", pred_label)
        if fallback is not None:
            put("fallback", fallback)

    def result(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}

    def reset(self) -> None:
        self.parts.clear()


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


def baseline_metrics(train: "RoutingSplit", test: "RoutingSplit") -> dict[str, dict[str, float]]:
    """Baselines on one test set (see module docstring)."""
    out: dict[str, dict[str, float]] = {}
    if test.has_scores and train.has_scores:
        full = ~np.isnan(test.scores).any(axis=1)
        if full.any():
            sc = test.scores[full]
            types = [t for t, f in zip(test.score_types, full) if f]
            eff = M.effective_scores(sc, types)
            costs = test.costs[full] if test.costs is not None else None
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
            train_mean = np.nanmean(train.effective_scores(), axis=0)
            out["best_single"] = pack(np.full(n, int(np.nanargmax(train_mean))))
            tasks = np.array([t for t, f in zip(test.tasks, full) if f])
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
    known = test.labels >= 0
    if (train.labels >= 0).any() and known.any() and not test.has_scores:
        counts = np.bincount(train.labels[train.labels >= 0])
        maj = np.full(int(known.sum()), int(counts.argmax()))
        out["majority"] = {"accuracy": M.classification_accuracy(maj, test.labels[known]),
                           "macro_f1": M.macro_f1(maj, test.labels[known])}
        out["random"] = {"accuracy": 1.0 / len(counts)}
    return out


def evaluate(dm: "RouterDataModule", outputs: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Flat metrics for every test set and group: the router's and the baselines'."""
    flat: dict[str, float] = {}
    per_set: dict[str, dict[str, dict[str, float]]] = {}
    for name, split in dm.test_sets.items():
        methods = {"router": routing_metrics(outputs[name])} if name in outputs else {}
        methods.update(baseline_metrics(dm.train_set, split))
        per_set[name] = methods
    for name, methods in per_set.items():
        for method, ms in methods.items():
            for k, v in ms.items():
                flat[f"{name}/{method}/{k}"] = float(v)
    for group, members in dm.groups.items():
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
