"""RouterDC split2 files (``loader: routerdc``): a JSON list of ``{question, scores, cluster_id?}``.

    python -c "from router_lab.data.loaders.routerdc import load_routerdc_json as f; print(len(f('../shared/data/routerdc/split2_model7/mmlu_test.json')))"
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Sequence

from router_lab.data.loaders.common import (
    check_pool, check_score_type, cluster_id_cell, existing_file, finish, mapping_cell, read_json, short,
)
from router_lab.data.records import DataError, RoutingRecord, stable_id

# RouterDC's reference evaluates these tasks by the fraction of correct sampled attempts;
# every other split2 task by the probability of the correct choice.
MULTI_ATTEMPT_TASKS = ("gsm8k", "humaneval", "mbpp", "javascript")


def routerdc_task(path: str | os.PathLike) -> str:
    """The task a split2 file holds: its stem without a train/test suffix
    (``gsm8k-train`` -> ``gsm8k``, ``MATH_prealgebra`` stays)."""
    return re.sub(r"[-_](train|test)$", "", Path(path).stem)


def routerdc_score_type(task: str) -> str:
    """How RouterDC's reference scores a task: ``multi_attempt`` or ``probability``."""
    return "multi_attempt" if task.lower() in MULTI_ATTEMPT_TASKS else "probability"


def load_routerdc_json(
    path: str | os.PathLike,
    task: str | None = None,
    score_type: str | None = None,
    llm_names: Sequence[str] | None = None,
    require_cluster_id: bool = False,
    n_items: int | None = None,
) -> list[RoutingRecord]:
    """A RouterDC split2 file: a JSON list of ``{"question", "scores", "cluster_id"?}``.

    ``n_items`` follows the reference's fixed samples per task: the first n items, or all
    items cycled in order up to n; the k-th repeat of an item gets id ``<id>#k``.
    """
    p = existing_file(path)
    task = task or routerdc_task(p)
    score_type = check_score_type(score_type or routerdc_score_type(task), str(p))
    if n_items is not None and (isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 1):
        raise DataError(f"{p}: n_items is {n_items!r}; expected a positive integer or None")
    data = read_json(p)
    if not isinstance(data, list):
        raise DataError(f"{p}: top level is a JSON {type(data).__name__}; expected a list of {{question, scores}} items")
    pairs = []
    for i, item in enumerate(data):
        where = f"{p} item {i}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: a JSON {type(item).__name__}; expected a {{question, scores}} object")
        question = item.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: 'question' is {short(question)}; expected non-empty text")
        if require_cluster_id and item.get("cluster_id") is None:
            raise DataError(
                f"{where}: no 'cluster_id'; run `python -m router_lab.clusters` to add cluster ids "
                "(or use the split2_model7_cluster files)"
            )
        pairs.append((where, RoutingRecord(
            id=stable_id(task, i, question), query=question, task=task, score_type=score_type,
            scores=mapping_cell(item.get("scores"), where, "scores"),
            cluster_id=cluster_id_cell(item.get("cluster_id"), where, "cluster_id"))))
    check_pool(pairs, llm_names)
    records = finish([r for _, r in pairs], p, "a JSON list of {question, scores} items")
    if n_items is None:
        return records
    # The first n records, cycling in order when there are fewer; copy k gets ``#k``.
    copies = [(records[j % len(records)], j // len(records)) for j in range(n_items)]
    return [src if k == 0 else dataclasses.replace(src, id=f"{src.id}#{k}", scores=dict(src.scores))
            for src, k in copies]
