"""RouterBench tables (``loader: routerbench``): a prompt, an eval name, one score column per
model and ``<model>|total_cost`` beside each (CSV / Parquet; PKL only with ``allow_pickle``)."""
from __future__ import annotations

import math
import os
import re
from typing import Sequence

from router_lab.data.loaders.common import (
    apply_score_policies, check_pool, check_score_type, existing_file, file_format, finish, plain, prompt_text,
    read_frame, text_cell,
)
from router_lab.data.records import DataError, RoutingRecord, stable_id


_ROUTERBENCH_NOT_MODELS = ("sample_id", "oracle_model_to_route_to")


def load_routerbench(
    path: str | os.PathLike,
    llm_names: Sequence[str] | None = None,
    task_column: str = "eval_name",
    prompt_column: str = "prompt",
    score_type: str = "probability",
    require_costs: bool = True,
    on_missing_score: str = "error",
    on_duplicate_id: str = "error",
    strip_few_shot: bool = False,
    allow_pickle: bool = False,
) -> list[RoutingRecord]:
    """RouterBench CSV / Parquet (or PKL with ``allow_pickle=True``): a prompt, an eval
    name, one score column per model and ``<model>|total_cost`` beside each. The models are
    the score columns with a cost column (``llm_names`` picks a subset); other columns
    (``sample_id``, ``<model>|model_response``, ``oracle_model_to_route_to``) are not read.

    ``on_missing_score`` / ``on_duplicate_id``: see :func:`apply_score_policies` (the
    published ARC file has rows with one NaN score that also repeat a ``sample_id``; the
    reference drops them). ``strip_few_shot``: keep only the final question of a k-shot
    prompt (its last blank-line-separated block) as the text the router encodes.
    Pickles run code when read: they are refused unless ``allow_pickle=True``."""
    import pandas as pd

    p = existing_file(path)
    fmt = file_format(p, None, ("csv", "pkl", "parquet"))
    score_type = check_score_type(score_type, str(p))
    df = read_frame(p, fmt, allow_pickle=allow_pickle)
    columns = list(df.columns)
    for c in (prompt_column, task_column):
        if c not in columns:
            raise DataError(f"{p}: no {c!r} column; columns are {columns}")
    cost_of = {c[: -len("|total_cost")]: c for c in columns if c.endswith("|total_cost")}
    # A model column: a number per row, or the prefix of a `<model>|...` column.
    not_models = {prompt_column, task_column, *_ROUTERBENCH_NOT_MODELS}
    candidates = [
        c for c in columns
        if "|" not in c and c not in not_models and not c.startswith("Unnamed:")
        and (pd.api.types.is_numeric_dtype(df[c]) or any(o.startswith(c + "|") for o in columns))
    ]
    if llm_names is None:
        for m, cost_col in cost_of.items():
            if m not in columns:
                raise DataError(f"{p}: cost column {cost_col!r} has no score column {m!r}; expected both per model")
        if require_costs:
            for m in candidates:
                if m not in cost_of:
                    raise DataError(
                        f"{p}: model {m!r} has no '{m}|total_cost' column; expected one per model (or require_costs=False)"
                    )
            models = [c for c in columns if c in cost_of]
        else:
            models = [c for c in columns if c in cost_of or c in candidates]
    else:
        models = list(llm_names)
        for m in models:
            if m not in columns:
                raise DataError(f"{p}: model {m!r} has no score column; columns are {columns}")
            if require_costs and m not in cost_of:
                raise DataError(
                    f"{p}: model {m!r} has no '{m}|total_cost' column; expected one per model (or require_costs=False)"
                )
    if not models:
        raise DataError(f"{p}: found no model columns; expected one score column per model beside '<model>|total_cost'")
    keep = [prompt_column, task_column, *models, *(cost_of[m] for m in models if m in cost_of)]
    if "sample_id" in columns:
        keep.append("sample_id")
    pairs = []
    for i, row in enumerate(df[list(dict.fromkeys(keep))].to_dict("records")):
        where = f"{p} row {i}"
        prompt = prompt_text(row[prompt_column], where, prompt_column)
        if not prompt.strip():
            raise DataError(f"{where}: {prompt_column!r} is empty; expected the prompt text")
        if strip_few_shot:
            prompt = final_question(prompt)
        task = text_cell(row[task_column], where, task_column)
        if not task:
            raise DataError(f"{where}: {task_column!r} is empty; expected the eval name")
        # Correctness stored as booleans is a score of 0/1.
        scores = {m: float(v) if isinstance(v, bool) else plain(v) for m, v in ((m, row[m]) for m in models)}
        for m, v in scores.items():
            # RouterBench scores are per-prompt performance in [0, 1] (0/1 on these tasks); a
            # 2.0 would pass as a "probability" and inflate every metric. Missing: the policy.
            if isinstance(v, (int, float)) and not math.isnan(v) and not 0.0 <= v <= 1.0:
                raise DataError(f"{where}: score for {m!r} is {v!r}; expected a RouterBench score in [0, 1]")
        costs = {m: plain(row[cost_of[m]]) for m in models if m in cost_of}
        rid = text_cell(row.get("sample_id"), where, "sample_id") or stable_id(task, i, prompt)
        pairs.append((where, RoutingRecord(id=rid, query=prompt, task=task, scores=scores, costs=costs or None,
                                           score_type=score_type)))
    pairs = apply_score_policies(pairs, models, p, on_missing_score, on_duplicate_id)
    check_pool(pairs, models, allow_partial=on_missing_score == "mask")
    return finish([r for _, r in pairs], p, "one row per prompt")


def final_question(prompt: str) -> str:
    """The last blank-line-separated block of a k-shot prompt: the question actually asked
    (RouterBench's ARC/Winogrande prompts put 5 solved exemplars first)."""
    blocks = [b for b in re.split(r"\n\s*\n", prompt.strip()) if b.strip()]
    return blocks[-1].strip() if blocks else prompt
