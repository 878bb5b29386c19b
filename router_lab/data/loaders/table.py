"""Your own table (``loader: table``): JSONL / JSON list / CSV / Parquet, one record per row."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from router_lab.data.loaders.common import (
    apply_score_policies, check_pool, check_score_type, cluster_id_cell, conversation_cell, existing_file, file_format,
    finish, make_record, mapping_cell, plain, read_rows, text_cell,
)
from router_lab.data.records import DataError, RoutingRecord, render_conversation, stable_id


TABLE_FIELDS = ("id", "query", "conversation", "task", "label", "cluster_id", "scores", "costs", "score_type")


def load_table(
    path: str | os.PathLike,
    columns: Mapping[str, str] | None = None,
    format: str | None = None,
    score_type: str = "probability",
    task: str | None = None,
    llm_names: Sequence[str] | None = None,
    score_columns: Mapping[str, str] | None = None,
    cost_columns: Mapping[str, str] | None = None,
    on_missing_score: str = "error",
    on_duplicate_id: str = "error",
) -> list[RoutingRecord]:
    """A JSONL / JSON-list / CSV / Parquet table, one record per row.

    ``columns`` maps record fields (:data:`TABLE_FIELDS`) to column names (default: the
    same). Scores come from one ``{llm: score}`` column or from ``score_columns``
    (``{llm: column}``); costs likewise. A table without any score column is label-only
    (scores ``{}``). A row's task is its task column, else ``task``, else the file stem.
    Missing scores and repeated ids: see :func:`apply_score_policies`.
    """
    p = existing_file(path)
    fmt = file_format(p, format, ("jsonl", "json", "csv", "parquet"))
    unknown = sorted(set(columns or {}) - set(TABLE_FIELDS))
    if unknown:
        raise DataError(f"{p}: columns names unknown field(s) {unknown}; expected keys from {list(TABLE_FIELDS)}")
    col = {f: f for f in TABLE_FIELDS} | dict(columns or {})
    score_type = check_score_type(score_type, str(p))
    rows, present = read_rows(p, fmt)
    for what, mapping in (("score", score_columns), ("cost", cost_columns)):
        for llm, c in (mapping or {}).items():
            if c not in present:
                raise DataError(f"{p}: {what} column {c!r} for LLM {llm!r} not found; columns are {present}")
    has_scores = bool(score_columns) or col["scores"] in present
    if llm_names is None and score_columns:
        llm_names = list(score_columns)
    pairs = []
    for i, (where, row) in enumerate(rows):
        query = text_cell(row.get(col["query"]), where, col["query"])
        conversation = conversation_cell(row.get(col["conversation"]), where, col["conversation"])
        if not query.strip() and not conversation:
            raise DataError(
                f"{where}: neither {col['query']!r} nor {col['conversation']!r} holds text; expected a query or a conversation"
            )
        row_task = text_cell(row.get(col["task"]), where, col["task"]) or task or p.stem
        if score_columns:
            scores = {llm: plain(row.get(c)) for llm, c in score_columns.items()}
        else:
            scores = mapping_cell(row.get(col["scores"]), where, col["scores"])
        if cost_columns:
            costs = {llm: plain(row.get(c)) for llm, c in cost_columns.items()}
        else:
            costs = mapping_cell(row.get(col["costs"]), where, col["costs"])
        rid = text_cell(row.get(col["id"]), where, col["id"]) or stable_id(
            row_task, i, query or render_conversation(conversation or []))
        pairs.append((where, make_record(
            where, id=rid, query=query, conversation=conversation, task=row_task, scores=scores, costs=costs or None,
            label=text_cell(row.get(col["label"]), where, col["label"]) or None,
            cluster_id=cluster_id_cell(row.get(col["cluster_id"]), where, col["cluster_id"]),
            score_type=text_cell(row.get(col["score_type"]), where, col["score_type"]) or score_type)))
    if has_scores:
        pairs = apply_score_policies(pairs, llm_names, p, on_missing_score, on_duplicate_id)
    check_pool(pairs, llm_names, require_scores=has_scores, allow_partial=on_missing_score == "mask")
    return finish([r for _, r in pairs], p, "one row per record")
