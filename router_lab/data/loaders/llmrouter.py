"""LLMRouter routing data (``loader: llmrouter``): one row per query x LLM."""
from __future__ import annotations

import os
from typing import Sequence

from router_lab.data.loaders.common import (
    check_pool, check_score_type, existing_file, file_format, finish, make_record, plain, read_rows, text_cell,
)
from router_lab.data.records import DataError, RoutingRecord, stable_id


def load_llmrouter(
    path: str | os.PathLike,
    format: str | None = None,
    score_type: str = "multi_attempt",
    task: str | None = None,
    llm_names: Sequence[str] | None = None,
) -> list[RoutingRecord]:
    """LLMRouter's routing data (ulab-uiuc/LLMRouter, e.g. ``routing_data_train.jsonl``): one
    row per query x LLM with ``query``, ``model_name``, ``performance`` and optionally
    ``cost`` and ``task_name``; the rows of one (task, query) become one record scoring every
    LLM that answered it. ``performance`` is taken as a raw score (``multi_attempt``: averaged
    as is) unless ``score_type=probability``."""
    p = existing_file(path)
    fmt = file_format(p, format, ("jsonl", "json", "csv", "parquet"))
    score_type = check_score_type(score_type, str(p))
    rows, present = read_rows(p, fmt)
    missing = [c for c in ("query", "model_name", "performance") if c not in present]
    if missing:
        raise DataError(f"{p}: no column(s) {missing}; expected LLMRouter routing rows (query, model_name, "
                        f"performance, optional cost and task_name); columns are {present}")
    groups: dict[tuple[str, str], dict] = {}
    for where, row in rows:
        query = text_cell(row.get("query"), where, "query")
        llm = text_cell(row.get("model_name"), where, "model_name")
        if not query.strip() or not llm:
            raise DataError(f"{where}: empty {'query' if not query.strip() else 'model_name'}; expected text")
        row_task = text_cell(row.get("task_name"), where, "task_name") or task or p.stem
        g = groups.setdefault((row_task, query), {"where": where, "scores": {}, "costs": {}})
        if llm in g["scores"]:
            raise DataError(f"{where}: a second row for LLM {llm!r} on the same query (first at {g['where']}); "
                            "expected one row per query and LLM")
        g["scores"][llm] = plain(row.get("performance"))
        if row.get("cost") is not None:
            g["costs"][llm] = plain(row.get("cost"))
    pairs = [(g["where"], make_record(g["where"], id=stable_id(t, i, q), query=q, task=t, scores=g["scores"],
                                  costs=g["costs"] or None, score_type=score_type))
             for i, ((t, q), g) in enumerate(groups.items())]
    check_pool(pairs, llm_names, require_scores=True)
    return finish([r for _, r in pairs], p, "one row per query and LLM")
