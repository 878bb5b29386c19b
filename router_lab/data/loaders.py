"""Loaders: each routing-data source -> ``list[RoutingRecord]``, checked at the edge.

    from router_lab.data.loaders import get_loader
    records = get_loader("routerdc")("../shared/data/routerdc/split2_model7/gsm8k-test.json")
    python -c "from router_lab.data.loaders import load_routerdc_json as f; print(len(f('../shared/data/routerdc/split2_model7/mmlu_test.json')))"

A data config names a loader from :data:`LOADERS` (``loader: routerdc``) and its keyword
arguments. Every loader takes ``path`` first and returns plain records; with
``llm_names=None`` it takes the file's LLMs, otherwise it checks the file against that
pool and orders each record's scores/costs by it. Bad input ends in one
:class:`DataError` line naming the file, the record (``line N`` for JSONL, ``item N``
for a JSON list, ``row N`` (0-based) for a table) and the field, and what was expected.
Record ids are stable: the source's own id where it has one, else
``stable_id(task, index, query)``.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import logging
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from router_lab.data.records import (
    SCORE_TYPES,
    DataError,
    RoutingRecord,
    check_scores,
    dataset_to_records,
    render_conversation,
    stable_id,
)

log = logging.getLogger(__name__)

# RouterDC's reference evaluates these tasks by the fraction of correct sampled attempts;
# every other split2 task by the probability of the correct choice.
MULTI_ATTEMPT_TASKS = ("gsm8k", "humaneval", "mbpp", "javascript")

_EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
    ".parquet": "parquet", ".pq": "parquet", ".pkl": "pkl", ".pickle": "pkl",
}


# ---------------------------------------------------------------- reading files

def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a directory; expected a file")
    if not p.is_file():
        raise DataError(f"{p}: no such file or directory")
    return p


def _read_json(p: Path) -> Any:
    try:
        with p.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON at line {e.lineno} column {e.colno} (char {e.pos}): {e.msg}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: byte {e.start} is not UTF-8; expected a UTF-8 JSON document") from None


def _read_jsonl(p: Path) -> list[tuple[str, dict]]:
    rows = []
    with p.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{p} line {n}: not UTF-8 text; expected UTF-8 JSON lines") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{p} line {n}: not valid JSON ({e.msg} at column {e.colno}); expected one JSON object per line"
                ) from None
            if not isinstance(obj, dict):
                raise DataError(f"{p} line {n}: a JSON {type(obj).__name__}; expected one JSON object per line")
            rows.append((f"{p} line {n}", obj))
    return rows


PICKLE_RISK = "unpickling runs whatever code the file names"


def _read_frame(p: Path, fmt: str, allow_pickle: bool = False):
    """A table file as a DataFrame. Pickles are code, not data: they are read only with
    ``allow_pickle=True`` (the source's explicit opt-in), with a warning naming the risk."""
    import pandas as pd

    if fmt == "pkl" and not allow_pickle:
        # Checked before the file is opened: nothing in it may run.
        raise DataError(f"{p}: is a pickle, and {PICKLE_RISK}; refusing to load it. Convert it to CSV/Parquet "
                        "(pd.read_pickle(f).to_parquet(...) on a machine you trust), or set allow_pickle: true "
                        "on this source if you trust the file")
    if fmt == "pkl":
        log.warning("%s: loading a pickle because the source sets allow_pickle=true; %s: only do this for a "
                    "file you trust", p, PICKLE_RISK)
    try:
        if fmt == "csv":
            df = pd.read_csv(p)
        elif fmt == "parquet":
            df = pd.read_parquet(p)
        else:
            df = pd.read_pickle(p)
    except Exception as e:  # pandas/pyarrow raise many types; the user needs the file and the reason
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{p}: cannot read as {fmt} ({reason})") from None
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{p}: holds a {type(df).__name__}; expected a pandas DataFrame")
    df.columns = [str(c) for c in df.columns]
    return df


def _read_rows(p: Path, fmt: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """Rows as ``(where, dict)`` plus the column names the file has."""
    if fmt == "jsonl":
        rows = _read_jsonl(p)
        return rows, list(dict.fromkeys(k for _, r in rows for k in r))
    if fmt == "json":
        data = _read_json(p)
        if not isinstance(data, list):
            raise DataError(f"{p}: top level is a JSON {type(data).__name__}; expected a list of objects")
        rows = []
        for i, obj in enumerate(data):
            if not isinstance(obj, dict):
                raise DataError(f"{p} item {i}: a JSON {type(obj).__name__}; expected an object")
            rows.append((f"{p} item {i}", obj))
        return rows, list(dict.fromkeys(k for _, r in rows for k in r))
    df = _read_frame(p, fmt)
    return [(f"{p} row {i}", r) for i, r in enumerate(df.to_dict("records"))], list(df.columns)


def _format(p: Path, fmt: str | None, allowed: Sequence[str]) -> str:
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in allowed:
            raise DataError(f"{p}: format {fmt!r} is not one of {list(allowed)}")
        return fmt
    fmt = _EXTENSIONS.get(p.suffix.lower())
    if fmt not in allowed:
        raise DataError(
            f"{p}: cannot tell the format from extension {p.suffix!r}; expected one of {list(allowed)} (pass format=)"
        )
    return fmt


# ---------------------------------------------------------------- converting cells

def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def _plain(v: Any) -> Any:
    """numpy arrays/scalars (parquet, pickle) -> Python lists/scalars."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    return v


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return type(v).__name__ in ("NAType", "NaTType")


def _text(v: Any, where: str, field: str) -> str:
    v = _plain(v)
    if _is_missing(v):
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):  # ids / labels read as numbers
        return str(v)
    raise DataError(f"{where}: {field!r} is {_short(v)}; expected text")


def _mapping(v: Any, where: str, field: str) -> dict:
    """A ``{llm: number}`` cell: a dict, a JSON string of one (CSV), or key/value pairs
    (a parquet map). ``None`` values (a parquet struct's absent keys) count as absent."""
    v = _plain(v)
    if _is_missing(v):
        return {}
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            raise DataError(f"{where}: {field!r} is {_short(v)}; expected a {{llm: number}} mapping") from None
    if isinstance(v, list) and all(isinstance(kv, (list, tuple)) and len(kv) == 2 for kv in v):
        v = dict(v)
    if not isinstance(v, dict):
        raise DataError(f"{where}: {field!r} is {_short(v)}; expected a {{llm: number}} mapping")
    return {str(k): _plain(x) for k, x in v.items() if x is not None}


def _conversation(v: Any, where: str, field: str) -> list[dict] | None:
    v = _plain(v)
    if _is_missing(v):
        return None
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            raise DataError(f"{where}: {field!r} is not JSON; expected [{{role, content}}, ...]") from None
    if not isinstance(v, list):
        raise DataError(f"{where}: {field!r} is {_short(v)}; expected [{{role, content}}, ...]")
    turns = []
    for j, t in enumerate(v):
        t = _plain(t)
        if not isinstance(t, dict) or not isinstance(t.get("content"), str):
            raise DataError(f"{where}: {field}[{j}] is {_short(t)}; expected {{role, content}} with text content")
        turns.append({"role": str(t.get("role") or "user"), "content": t["content"]})
    return turns or None


def _cluster_id(v: Any, where: str, field: str) -> int | None:
    v = _plain(v)
    if _is_missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    elif isinstance(v, str) and v.strip().isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise DataError(f"{where}: {field!r} is {_short(v)}; expected a non-negative integer")
    return v


def _prompt_text(v: Any, where: str, field: str, first_only: bool = False) -> str:
    """A prompt cell as text. Some sources store the turns as a list, or as the repr /
    JSON of a list of strings ("['question text']"): join them, or take the first."""
    v = _plain(v)
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("[") and s.endswith("]"):
            parsed = None
            for parse in (json.loads, ast.literal_eval):
                try:
                    parsed = parse(s)
                    break
                except Exception:  # not a literal: the prompt just starts with "["
                    continue
            if isinstance(parsed, list) and parsed and all(isinstance(x, str) for x in parsed):
                v = parsed
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return v[0] if first_only else "\n".join(v)
    return _text(v, where, field)


def _check_score_type(score_type: str, where: str) -> str:
    if score_type not in SCORE_TYPES:
        raise DataError(f"{where}: score_type {score_type!r} is not one of {SCORE_TYPES}")
    return score_type


def _record(where: str, **fields: Any) -> RoutingRecord:
    try:
        return RoutingRecord(**fields)
    except DataError as e:  # a bad score_type cell: add the place
        raise DataError(f"{where}: {e}") from None


def _check_pool(
    pairs: Sequence[tuple[str, RoutingRecord]],
    llm_names: Sequence[str] | None,
    require_scores: bool = True,
    allow_partial: bool = False,
) -> list[str]:
    """Check every record against the pool (``llm_names``, else the first scored record's
    LLMs) and order its scores/costs by it; returns the pool."""
    if llm_names is not None:
        pool = list(llm_names)
    else:
        pool = next((list(r.scores) for _, r in pairs if r.scores), [])
    for where, r in pairs:
        check_scores(r, pool, where, require_scores=require_scores, allow_partial=allow_partial)
        r.scores = {n: float(r.scores[n]) for n in pool if n in r.scores}
        if r.costs:
            r.costs = {n: float(r.costs[n]) for n in pool if n in r.costs}
    return pool


MISSING_SCORE_POLICIES = ("error", "drop_record", "mask")
DUPLICATE_ID_POLICIES = ("error", "keep_first", "suffix")


def _check_policy(p: Path, name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise DataError(f"{p}: {name}={value!r}; expected one of {list(allowed)}")
    return value


def _apply_score_policies(
    pairs: list[tuple[str, RoutingRecord]],
    pool: Sequence[str] | None,
    p: Path,
    on_missing_score: str = "error",
    on_duplicate_id: str = "error",
) -> list[tuple[str, RoutingRecord]]:
    """The one place a score table's missing scores and repeated ids are handled.

    A score is missing when its cell is empty/NaN or the record lacks a pool LLM (the pool:
    ``pool``, else the first scored record's LLMs). ``on_missing_score``: ``error`` (one line
    naming the row and LLM), ``drop_record`` (the row goes; counts are logged), ``mask`` (the
    row stays with that LLM unscored: NaN in the arrays, ignored by losses and metrics; the
    data config needs ``allow_partial_scores: true``). ``on_duplicate_id`` (after dropping):
    ``error``, ``keep_first`` (later rows with a seen id go; counted) or ``suffix`` (the k-th
    repeat gets id ``<id>#k``)."""
    _check_policy(p, "on_missing_score", on_missing_score, MISSING_SCORE_POLICIES)
    _check_policy(p, "on_duplicate_id", on_duplicate_id, DUPLICATE_ID_POLICIES)
    if pool is None:  # as _check_pool: the first scored record's LLMs
        pool = next((list(r.scores) for _, r in pairs if r.scores), [])
    kept, dropped, masked = [], Counter(), Counter()
    for where, r in pairs:
        if not r.scores:  # label-only rows are not score rows
            kept.append((where, r))
            continue
        missing = [n for n in pool if _is_missing(_plain(r.scores.get(n)))]
        if not missing:
            kept.append((where, r))
        elif on_missing_score == "error":
            raise DataError(f"{where}: record {r.id!r} has no score for LLM(s) {missing} (empty or nan); expected a number >= 0 for "
                            "every LLM (or set on_missing_score: drop_record | mask on this source)")
        elif on_missing_score == "drop_record":
            dropped.update(missing)
        else:
            r.scores = {n: v for n, v in r.scores.items() if n not in missing}
            masked.update(missing)
            kept.append((where, r))
    n_dropped = len(pairs) - len(kept)
    if n_dropped:
        log.warning("%s: dropped %d of %d record(s) with a missing score (on_missing_score=drop_record); "
                    "missing per LLM: %s", p, n_dropped, len(pairs), dict(sorted(dropped.items())))
    if masked:
        log.warning("%s: masked %d missing score(s) (on_missing_score=mask), per LLM: %s", p, sum(masked.values()),
                    dict(sorted(masked.items())))
    out, seen, uses = [], {}, Counter()
    for where, r in kept:
        if r.id in seen:
            if on_duplicate_id == "error":
                raise DataError(f"{where}: id {r.id!r} repeats {seen[r.id]}; expected unique ids (or set "
                                "on_duplicate_id: keep_first | suffix on this source)")
            uses[r.id] += 1
            if on_duplicate_id == "keep_first":
                continue
            r.id = f"{r.id}#{uses[r.id]}"
        else:
            seen[r.id] = where
        out.append((where, r))
    if uses:
        how = "kept the first, dropped" if on_duplicate_id == "keep_first" else "renamed <id>#k"
        log.warning("%s: %d id(s) repeat (%d extra row(s); on_duplicate_id=%s: %s them)", p, len(uses),
                    sum(uses.values()), on_duplicate_id, how)
    if not out and pairs:
        raise DataError(f"{p}: every record was dropped (on_missing_score={on_missing_score}); expected some rows "
                        "with every score")
    return out


def _finish(records: list[RoutingRecord], p: Path, expected: str) -> list[RoutingRecord]:
    if not records:
        raise DataError(f"{p}: no records; expected {expected}")
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.id in seen:
            raise DataError(f"{p}: records {seen[r.id]} and {i} share id {r.id!r}; expected unique ids")
        seen[r.id] = i
    return records


# ---------------------------------------------------------------- RouterDC split2

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
    p = _existing_file(path)
    task = task or routerdc_task(p)
    score_type = _check_score_type(score_type or routerdc_score_type(task), str(p))
    if n_items is not None and (isinstance(n_items, bool) or not isinstance(n_items, int) or n_items < 1):
        raise DataError(f"{p}: n_items is {n_items!r}; expected a positive integer or None")
    data = _read_json(p)
    if not isinstance(data, list):
        raise DataError(f"{p}: top level is a JSON {type(data).__name__}; expected a list of {{question, scores}} items")
    pairs = []
    for i, item in enumerate(data):
        where = f"{p} item {i}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: a JSON {type(item).__name__}; expected a {{question, scores}} object")
        question = item.get("question")
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"{where}: 'question' is {_short(question)}; expected non-empty text")
        if require_cluster_id and item.get("cluster_id") is None:
            raise DataError(
                f"{where}: no 'cluster_id'; run `python -m router_lab.clusters` to add cluster ids "
                "(or use the split2_model7_cluster files)"
            )
        rec = RoutingRecord(
            id=stable_id(task, i, question),
            query=question,
            task=task,
            scores=_mapping(item.get("scores"), where, "scores"),
            cluster_id=_cluster_id(item.get("cluster_id"), where, "cluster_id"),
            score_type=score_type,
        )
        pairs.append((where, rec))
    _check_pool(pairs, llm_names)
    records = _finish([r for _, r in pairs], p, "a JSON list of {question, scores} items")
    return records if n_items is None else _cycle_to(records, n_items)


def _cycle_to(records: list[RoutingRecord], n: int) -> list[RoutingRecord]:
    """The first n records, cycling in order when there are fewer; copy k gets ``#k``."""
    out = []
    for j in range(n):
        src, k = records[j % len(records)], j // len(records)
        out.append(src if k == 0 else dataclasses.replace(src, id=f"{src.id}#{k}", scores=dict(src.scores)))
    return out


def check_same_llms(files_to_names: Mapping[str, Sequence[str]]) -> list[str]:
    """Raise DataError naming two files whose LLM names differ (order aside); returns
    the first file's names."""
    items = list(files_to_names.items())
    if not items:
        raise DataError("check_same_llms: no files given; expected {file: [llm, ...]}")
    first, ref = items[0]
    for name, names in items[1:]:
        if set(names) != set(ref):
            only_here = [n for n in names if n not in set(ref)]
            only_there = [n for n in ref if n not in set(names)]
            raise DataError(
                f"{name} and {first} name different LLMs (only in {name}: {only_here}; only in {first}: {only_there});"
                " expected the same pool in every file"
            )
    return list(ref)


# ---------------------------------------------------------------- CLINC150

def load_clinc150(
    path: str | os.PathLike,
    split: str = "train",
    label: str = "domain",
    domains_path: str | os.PathLike | None = None,
    include_oos: bool = False,
) -> list[RoutingRecord]:
    """CLINC150 (``clinc150_train_val.json``: ``{split: [[text, intent], ...]}``) as
    label-only records: task = the intent's domain, label = the domain or the intent.
    With ``include_oos`` the ``oos_<split>`` rows come too, with task and label ``"oos"``."""
    p = _existing_file(path)
    if label not in ("domain", "intent"):
        raise DataError(f"{p}: label is {label!r}; expected 'domain' or 'intent'")
    dp = _existing_file(domains_path if domains_path is not None else p.with_name("domains.json"))
    intent_domain = _clinc_domains(dp)
    data = _read_json(p)
    if not isinstance(data, dict):
        raise DataError(f"{p}: top level is a JSON {type(data).__name__}; expected {{split: [[text, intent], ...]}}")
    if split not in data:
        raise DataError(f"{p}: no split {split!r}; the file has {list(data)}")
    parts = [split]
    if include_oos and not split.startswith("oos_"):
        if f"oos_{split}" not in data:
            raise DataError(f"{p}: no split 'oos_{split}' for include_oos; the file has {list(data)}")
        parts.append(f"oos_{split}")
    records = []
    for part in parts:
        rows = data[part]
        if not isinstance(rows, list):
            raise DataError(f"{p}: split {part!r} is a JSON {type(rows).__name__}; expected a list of [text, intent]")
        for i, row in enumerate(rows):
            where = f"{p} {part} item {i}"
            if not (isinstance(row, list) and len(row) == 2 and all(isinstance(x, str) for x in row) and row[0].strip()):
                raise DataError(f"{where}: {_short(row)}; expected [text, intent]")
            text, intent = row
            if intent == "oos" or part.startswith("oos_"):
                if not include_oos:
                    continue
                task = lab = "oos"
            else:
                task = intent_domain.get(intent)
                if task is None:
                    raise DataError(f"{where}: intent {intent!r} is in no domain of {dp}")
                lab = intent if label == "intent" else task
            records.append(RoutingRecord(id=stable_id("clinc150", part, i, text), query=text, task=task, label=lab))
    return _finish(records, p, f"[text, intent] rows in split {split!r}")


def _clinc_domains(dp: Path) -> dict[str, str]:
    data = _read_json(dp)
    if not isinstance(data, dict):
        raise DataError(f"{dp}: top level is a JSON {type(data).__name__}; expected {{domain: [intent, ...]}}")
    intent_domain: dict[str, str] = {}
    for domain, intents in data.items():
        if not isinstance(intents, list) or not all(isinstance(x, str) for x in intents):
            raise DataError(f"{dp}: domain {domain!r} is {_short(intents)}; expected a list of intent names")
        for intent in intents:
            if intent in intent_domain:
                raise DataError(f"{dp}: intent {intent!r} is in domains {intent_domain[intent]!r} and {domain!r}")
            intent_domain[intent] = domain
    return intent_domain


# ---------------------------------------------------------------- generic tables

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
    Missing scores and repeated ids: see :func:`_apply_score_policies`.
    """
    p = _existing_file(path)
    fmt = _format(p, format, ("jsonl", "json", "csv", "parquet"))
    unknown = sorted(set(columns or {}) - set(TABLE_FIELDS))
    if unknown:
        raise DataError(f"{p}: columns names unknown field(s) {unknown}; expected keys from {list(TABLE_FIELDS)}")
    col = {f: f for f in TABLE_FIELDS} | dict(columns or {})
    score_type = _check_score_type(score_type, str(p))
    rows, present = _read_rows(p, fmt)
    for what, mapping in (("score", score_columns), ("cost", cost_columns)):
        for llm, c in (mapping or {}).items():
            if c not in present:
                raise DataError(f"{p}: {what} column {c!r} for LLM {llm!r} not found; columns are {present}")
    has_scores = bool(score_columns) or col["scores"] in present
    if llm_names is None and score_columns:
        llm_names = list(score_columns)
    pairs = []
    for i, (where, row) in enumerate(rows):
        query = _text(row.get(col["query"]), where, col["query"])
        conversation = _conversation(row.get(col["conversation"]), where, col["conversation"])
        if not query.strip() and not conversation:
            raise DataError(
                f"{where}: neither {col['query']!r} nor {col['conversation']!r} holds text; expected a query or a conversation"
            )
        row_task = _text(row.get(col["task"]), where, col["task"]) or task or p.stem
        if score_columns:
            scores = {llm: _plain(row.get(c)) for llm, c in score_columns.items()}
        else:
            scores = _mapping(row.get(col["scores"]), where, col["scores"])
        if cost_columns:
            costs = {llm: _plain(row.get(c)) for llm, c in cost_columns.items()}
        else:
            costs = _mapping(row.get(col["costs"]), where, col["costs"])
        rec = _record(
            where,
            id=_text(row.get(col["id"]), where, col["id"]) or stable_id(row_task, i, query or render_conversation(conversation or [])),
            query=query,
            conversation=conversation,
            task=row_task,
            scores=scores,
            costs=costs or None,
            label=_text(row.get(col["label"]), where, col["label"]) or None,
            cluster_id=_cluster_id(row.get(col["cluster_id"]), where, col["cluster_id"]),
            score_type=_text(row.get(col["score_type"]), where, col["score_type"]) or score_type,
        )
        pairs.append((where, rec))
    if has_scores:
        pairs = _apply_score_policies(pairs, llm_names, p, on_missing_score, on_duplicate_id)
    _check_pool(pairs, llm_names, require_scores=has_scores, allow_partial=on_missing_score == "mask")
    return _finish([r for _, r in pairs], p, "one row per record")


# ---------------------------------------------------------------- the project's own formats

_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(RoutingRecord))


def save_records_jsonl(records: Sequence[RoutingRecord], path: str | os.PathLike) -> Path:
    """Write one ``dataclasses.asdict(record)`` per line, atomically (``<path>.tmp``, then rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for r in records:
                try:
                    line = json.dumps(dataclasses.asdict(r), ensure_ascii=False, allow_nan=False)
                except ValueError:
                    raise DataError(f"{p}: record {r.id!r} holds NaN or infinity; JSON cannot store it") from None
                f.write(line + "\n")
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def load_records_jsonl(path: str | os.PathLike) -> list[RoutingRecord]:
    """Records written by :func:`save_records_jsonl`."""
    p = _existing_file(path)
    records = []
    for where, obj in _read_jsonl(p):
        unknown = sorted(set(obj) - set(_RECORD_FIELDS))
        if unknown:
            raise DataError(f"{where}: unknown field(s) {unknown}; expected RoutingRecord fields {list(_RECORD_FIELDS)}")
        if not isinstance(obj.get("id"), str) or not obj["id"]:
            raise DataError(f"{where}: 'id' is {_short(obj.get('id'))}; expected a non-empty string")
        costs = _mapping(obj.get("costs"), where, "costs")
        label = obj.get("label")
        rec = _record(
            where,
            id=obj["id"],
            query=_text(obj.get("query"), where, "query"),
            conversation=_conversation(obj.get("conversation"), where, "conversation"),
            task=_text(obj.get("task"), where, "task") or "default",
            scores=_mapping(obj.get("scores"), where, "scores"),
            costs=costs or None,
            label=None if label is None else _text(label, where, "label"),
            cluster_id=_cluster_id(obj.get("cluster_id"), where, "cluster_id"),
            score_type=obj.get("score_type", "probability"),
        )
        if not rec.query.strip():
            raise DataError(f"{where}: neither 'query' nor 'conversation' holds text; expected a query or a conversation")
        # A record's own LLMs are its pool: this checks values, not membership.
        check_scores(rec, list(dict.fromkeys([*rec.scores, *(rec.costs or {})])), where, require_scores=False)
        records.append(rec)
    return _finish(records, p, "one JSON RoutingRecord per line")


def load_saved_dataset(path: str | os.PathLike) -> list[RoutingRecord]:
    """A ``datasets`` directory saved from :func:`records_to_dataset` (``ds.save_to_disk``)."""
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"{p}: no such directory; expected a dataset saved with records_to_dataset(...).save_to_disk()")
    from datasets import Dataset, load_from_disk

    from router_lab.data.records import dataset_llm_names

    try:
        ds = load_from_disk(str(p))
    except Exception as e:  # datasets raises FileNotFoundError/ValueError/... for a non-dataset folder
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{p}: not a saved `datasets` directory ({reason})") from None
    if not isinstance(ds, Dataset):
        raise DataError(f"{p}: holds a {type(ds).__name__} with splits {list(ds)}; expected one Dataset")
    missing = [c for c in _RECORD_FIELDS if c not in ds.column_names]
    if missing:
        raise DataError(f"{p}: no column(s) {missing}; expected a dataset written by records_to_dataset")
    names = dataset_llm_names(ds)
    for i, scores in enumerate(ds["scores"]):
        if scores and len(scores) != len(names):
            raise DataError(
                f"{p} row {i}: 'scores' has {len(scores)} values but the stored pool has {len(names)} LLMs {names}"
            )
    return _finish(dataset_to_records(ds), p, "a non-empty dataset")


# ---------------------------------------------------------------- RouterBench

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

    ``on_missing_score`` / ``on_duplicate_id``: see :func:`_apply_score_policies` (the
    published ARC file has rows with one NaN score that also repeat a ``sample_id``; the
    reference drops them). ``strip_few_shot``: keep only the final question of a k-shot
    prompt (its last blank-line-separated block) as the text the router encodes.
    Pickles run code when read: they are refused unless ``allow_pickle=True``."""
    import pandas as pd

    p = _existing_file(path)
    fmt = _format(p, None, ("csv", "pkl", "parquet"))
    score_type = _check_score_type(score_type, str(p))
    _check_policy(p, "on_missing_score", on_missing_score, MISSING_SCORE_POLICIES)
    _check_policy(p, "on_duplicate_id", on_duplicate_id, DUPLICATE_ID_POLICIES)
    df = _read_frame(p, fmt, allow_pickle=allow_pickle)
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
        prompt = _prompt_text(row[prompt_column], where, prompt_column)
        if not prompt.strip():
            raise DataError(f"{where}: {prompt_column!r} is empty; expected the prompt text")
        if strip_few_shot:
            prompt = final_question(prompt)
        task = _text(row[task_column], where, task_column)
        if not task:
            raise DataError(f"{where}: {task_column!r} is empty; expected the eval name")
        # Correctness stored as booleans is a score of 0/1.
        scores = {m: float(v) if isinstance(v, bool) else _plain(v) for m, v in ((m, row[m]) for m in models)}
        costs = {m: _plain(row[cost_of[m]]) for m in models if m in cost_of}
        rec = RoutingRecord(
            id=_text(row.get("sample_id"), where, "sample_id") or stable_id(task, i, prompt),
            query=prompt,
            task=task,
            scores=scores,
            costs=costs or None,
            score_type=score_type,
        )
        pairs.append((where, rec))
    pairs = _apply_score_policies(pairs, models, p, on_missing_score, on_duplicate_id)
    _check_pool(pairs, models, allow_partial=on_missing_score == "mask")
    return _finish([r for _, r in pairs], p, "one row per prompt")


def final_question(prompt: str) -> str:
    """The last blank-line-separated block of a k-shot prompt: the question actually asked
    (RouterBench's ARC/Winogrande prompts put 5 solved exemplars first)."""
    blocks = [b for b in re.split(r"\n\s*\n", prompt.strip()) if b.strip()]
    return blocks[-1].strip() if blocks else prompt


# ---------------------------------------------------------------- Chatbot Arena

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
    p = _existing_file(path)
    if unknown_models not in ("drop", "fail"):
        raise DataError(f"{p}: unknown_models is {unknown_models!r}; expected 'drop' or 'fail'")
    rows, _ = _read_rows(p, _format(p, None, ("parquet", "json", "jsonl")))
    pool = list(llm_names) if llm_names is not None else None
    dropped_rows, dropped_models = 0, Counter()
    pairs, id_uses = [], Counter()
    for i, (where, row) in enumerate(rows):
        a = _text(row.get("model_a"), where, "model_a")
        b = _text(row.get("model_b"), where, "model_b")
        if not a or not b:
            raise DataError(f"{where}: 'model_a' is {a!r} and 'model_b' is {b!r}; expected two model names")
        if a == b:
            raise DataError(f"{where}: 'model_a' and 'model_b' are both {a!r}; expected two different models")
        winner = _plain(row.get("winner"))
        if not isinstance(winner, str) or winner not in ARENA_WINNER_SCORES:
            raise DataError(f"{where}: 'winner' is {_short(winner)}; expected one of {list(ARENA_WINNER_SCORES)}")
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
        qid = _text(row.get("question_id"), where, "question_id")
        if qid:
            k = id_uses[qid]
            id_uses[qid] += 1
            rid = qid if k == 0 else f"{qid}#{k}"
        else:
            rid = stable_id("arena", i, a, b, query)
        sa, sb = ARENA_WINNER_SCORES[winner]
        rec = RoutingRecord(
            id=rid,
            query=query,
            conversation=[{"role": "user", "content": query}],
            task="arena",
            scores={a: sa, b: sb},
            label=winner,
        )
        pairs.append((where, rec))
    if dropped_rows:
        log.warning(
            "%s: dropped %d row(s) with models outside llm_names: %s",
            p, dropped_rows, dict(sorted(dropped_models.items())),
        )
    if pool is None:
        pool = list(dict.fromkeys(m for _, r in pairs for m in r.scores))
    _check_pool(pairs, pool, allow_partial=True)
    note = f" ({dropped_rows} row(s) dropped for models outside llm_names)" if dropped_rows else ""
    return _finish([r for _, r in pairs], p, f"model_a/model_b/winner rows{note}")


def _arena_query(row: dict, where: str, prompt_column: str | None) -> str:
    if prompt_column is not None:
        if prompt_column not in row:
            raise DataError(f"{where}: no {prompt_column!r} column; expected the prompt there (prompt_column)")
        query = _prompt_text(row[prompt_column], where, prompt_column, first_only=True)
    elif not _is_missing(_plain(row.get("conversation_a"))):
        turns = _conversation(row["conversation_a"], where, "conversation_a") or []
        query = next((t["content"] for t in turns if t["role"] in ("user", "human")), "")
        if not query.strip():
            raise DataError(f"{where}: 'conversation_a' has no user turn with text; expected [{{role: user, content}}, ...]")
    elif "prompt" in row:
        query = _prompt_text(row["prompt"], where, "prompt", first_only=True)
    else:
        raise DataError(f"{where}: no 'conversation_a' or 'prompt'; expected one (or pass prompt_column=)")
    if not query.strip():
        raise DataError(f"{where}: the prompt is empty; expected the first user turn's text")
    return query


# ---------------------------------------------------------------- LLMRouter routing data

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
    p = _existing_file(path)
    fmt = _format(p, format, ("jsonl", "json", "csv", "parquet"))
    score_type = _check_score_type(score_type, str(p))
    rows, present = _read_rows(p, fmt)
    missing = [c for c in ("query", "model_name", "performance") if c not in present]
    if missing:
        raise DataError(f"{p}: no column(s) {missing}; expected LLMRouter routing rows (query, model_name, "
                        f"performance, optional cost and task_name); columns are {present}")
    groups: dict[tuple[str, str], dict] = {}
    for where, row in rows:
        query = _text(row.get("query"), where, "query")
        llm = _text(row.get("model_name"), where, "model_name")
        if not query.strip() or not llm:
            raise DataError(f"{where}: empty {'query' if not query.strip() else 'model_name'}; expected text")
        row_task = _text(row.get("task_name"), where, "task_name") or task or p.stem
        g = groups.setdefault((row_task, query), {"where": where, "scores": {}, "costs": {}})
        if llm in g["scores"]:
            raise DataError(f"{where}: a second row for LLM {llm!r} on the same query (first at {g['where']}); "
                            "expected one row per query and LLM")
        g["scores"][llm] = _plain(row.get("performance"))
        if row.get("cost") is not None:
            g["costs"][llm] = _plain(row.get("cost"))
    pairs = [(g["where"], _record(g["where"], id=stable_id(t, i, q), query=q, task=t, scores=g["scores"],
                                  costs=g["costs"] or None, score_type=score_type))
             for i, ((t, q), g) in enumerate(groups.items())]
    _check_pool(pairs, llm_names, require_scores=True)
    return _finish([r for _, r in pairs], p, "one row per query and LLM")


# ---------------------------------------------------------------- registry

LOADERS: dict[str, Callable[..., list[RoutingRecord]]] = {
    "routerdc": load_routerdc_json,
    "clinc150": load_clinc150,
    "table": load_table,
    "records": load_records_jsonl,
    "hf_disk": load_saved_dataset,
    "routerbench": load_routerbench,
    "arena": load_arena,
    "llmrouter": load_llmrouter,
}


def get_loader(name: str) -> Callable[..., list[RoutingRecord]]:
    """The loader a config names, or one DataError line listing the known names."""
    try:
        return LOADERS[name]
    except KeyError:
        raise DataError(f"unknown loader {name!r}; expected one of {sorted(LOADERS)}") from None
