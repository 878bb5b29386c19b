"""Chatbot-Arena battles (``loader: arena``): ``model_a``, ``model_b``, ``winner`` and the prompt."""
from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Sequence

from router_lab.data.loaders.common import (
    check_pool, conversation_cell, dedupe_ids, existing_file, file_format, finish, is_missing, plain, prompt_text, read_rows, short,
    text_cell,
)
from router_lab.data.records import DataError, RoutingRecord, stable_id

log = logging.getLogger(__name__)


ARENA_WINNER_SCORES = {"model_a": (1.0, 0.0), "model_b": (0.0, 1.0), "tie": (0.5, 0.5), "tie (bothbad)": (0.0, 0.0)}


def load_arena(
    path: str | os.PathLike,
    llm_names: Sequence[str] | None = None,
    unknown_models: str = "drop",
    prompt_column: str | None = None,
) -> list[RoutingRecord]:
    """Chatbot-Arena pairs (parquet / JSON list / JSONL with ``model_a``, ``model_b``,
    ``winner`` and ``conversation_a`` or ``prompt``): one record per battle, scoring the
    two models (winner 1 / loser 0, tie 0.5 each, ``tie (bothbad)`` 0 each), label = the
    winner string, task ``"arena"``, query = the first user turn.

    Ids are ``question_id`` where present (a prompt battled again gets ``#k``), else
    stable. Rows with a model outside ``llm_names`` are dropped with one warning
    (``unknown_models="drop"``) or raise (``"fail"``)."""
    p = existing_file(path)
    if unknown_models not in ("drop", "fail"):
        raise DataError(f"{p}: unknown_models is {unknown_models!r}; expected 'drop' or 'fail'")
    rows, _ = read_rows(p, file_format(p, None, ("parquet", "json", "jsonl")))
    pool = list(llm_names) if llm_names is not None else None
    dropped_rows, dropped_models = 0, Counter()
    pairs = []
    for i, (where, row) in enumerate(rows):
        a = text_cell(row.get("model_a"), where, "model_a")
        b = text_cell(row.get("model_b"), where, "model_b")
        if not a or not b:
            raise DataError(f"{where}: 'model_a' is {a!r} and 'model_b' is {b!r}; expected two model names")
        if a == b:
            raise DataError(f"{where}: 'model_a' and 'model_b' are both {a!r}; expected two different models")
        winner = plain(row.get("winner"))
        if not isinstance(winner, str) or winner not in ARENA_WINNER_SCORES:
            raise DataError(f"{where}: 'winner' is {short(winner)}; expected one of {list(ARENA_WINNER_SCORES)}")
        outside = [m for m in (a, b) if pool is not None and m not in pool]
        if outside:
            if unknown_models == "fail":
                raise DataError(
                    f"{where}: model {outside[0]!r} is not in llm_names {pool}; pass unknown_models='drop' to skip such rows"
                )
            dropped_rows += 1
            dropped_models.update(outside)
            continue
        query = _arena_query(row, where, prompt_column)
        sa, sb = ARENA_WINNER_SCORES[winner]
        rid = text_cell(row.get("question_id"), where, "question_id") or stable_id("arena", i, a, b, query)
        pairs.append((where, RoutingRecord(id=rid, query=query, conversation=[{"role": "user", "content": query}],
                                           task="arena", scores={a: sa, b: sb}, label=winner)))
    if dropped_rows:
        log.warning(
            "%s: dropped %d row(s) with models outside llm_names: %s",
            p, dropped_rows, dict(sorted(dropped_models.items())),
        )
    pairs = dedupe_ids(pairs, "suffix", p)  # a prompt battled again: <question_id>#k
    if pool is None:
        pool = list(dict.fromkeys(m for _, r in pairs for m in r.scores))
    check_pool(pairs, pool, allow_partial=True)
    note = f" ({dropped_rows} row(s) dropped for models outside llm_names)" if dropped_rows else ""
    return finish([r for _, r in pairs], p, f"model_a/model_b/winner rows{note}")


def _arena_query(row: dict, where: str, prompt_column: str | None) -> str:
    if prompt_column is not None:
        if prompt_column not in row:
            raise DataError(f"{where}: no {prompt_column!r} column; expected the prompt there (prompt_column)")
        query = prompt_text(row[prompt_column], where, prompt_column, first_only=True)
    elif not is_missing(plain(row.get("conversation_a"))):
        turns = conversation_cell(row["conversation_a"], where, "conversation_a") or []
        query = next((t["content"] for t in turns if t["role"] in ("user", "human")), "")
        if not query.strip():
            raise DataError(f"{where}: 'conversation_a' has no user turn with text; expected [{{role: user, content}}, ...]")
    elif "prompt" in row:
        query = prompt_text(row["prompt"], where, "prompt", first_only=True)
    else:
        raise DataError(f"{where}: no 'conversation_a' or 'prompt'; expected one (or pass prompt_column=)")
    if not query.strip():
        raise DataError(f"{where}: the prompt is empty; expected the first user turn's text")
    return query
