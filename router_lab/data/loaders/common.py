"""What every loader shares: reading JSON / JSONL / table files, turning cells into record
fields, checking scores against the pool, and one-line ``DataError`` messages naming the
file, the record (``line N`` for JSONL, ``item N`` for a JSON list, ``row N`` (0-based) for
a table) and the field."""
from __future__ import annotations

import ast
import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

from router_lab.data.records import SCORE_TYPES, DataError, RoutingRecord, check_scores

log = logging.getLogger(__name__)

_EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
    ".parquet": "parquet", ".pq": "parquet", ".pkl": "pkl", ".pickle": "pkl",
}


def existing_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a directory; expected a file")
    if not p.is_file():
        raise DataError(f"{p}: no such file or directory")
    return p


def first_line(e: Exception) -> str:
    """An exception's first line (libraries raise many types; the user needs the reason)."""
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def read_json(p: Path) -> Any:
    try:
        with p.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON at line {e.lineno} column {e.colno} (char {e.pos}): {e.msg}") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: byte {e.start} is not UTF-8; expected a UTF-8 JSON document") from None


def read_jsonl(p: Path) -> list[tuple[str, dict]]:
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


def read_frame(p: Path, fmt: str, allow_pickle: bool = False):
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
        raise DataError(f"{p}: cannot read as {fmt} ({first_line(e)})") from None
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{p}: holds a {type(df).__name__}; expected a pandas DataFrame")
    df.columns = [str(c) for c in df.columns]
    return df


def read_rows(p: Path, fmt: str) -> tuple[list[tuple[str, dict]], list[str]]:
    """Rows as ``(where, dict)`` plus the column names the file has."""
    if fmt in ("csv", "parquet"):
        df = read_frame(p, fmt)
        return [(f"{p} row {i}", r) for i, r in enumerate(df.to_dict("records"))], list(df.columns)
    if fmt == "jsonl":
        rows = read_jsonl(p)
    else:
        data = read_json(p)
        if not isinstance(data, list):
            raise DataError(f"{p}: top level is a JSON {type(data).__name__}; expected a list of objects")
        rows = [(f"{p} item {i}", obj) for i, obj in enumerate(data)]
        for where, obj in rows:
            if not isinstance(obj, dict):
                raise DataError(f"{where}: a JSON {type(obj).__name__}; expected an object")
    return rows, list(dict.fromkeys(k for _, r in rows for k in r))


def file_format(p: Path, fmt: str | None, allowed: Sequence[str]) -> str:
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


def short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def plain(v: Any) -> Any:
    """numpy arrays/scalars (parquet, pickle) -> Python lists/scalars."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    return v


def is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return type(v).__name__ in ("NAType", "NaTType")


def text_cell(v: Any, where: str, field: str) -> str:
    v = plain(v)
    if is_missing(v):
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):  # ids / labels read as numbers
        return str(v)
    raise DataError(f"{where}: {field!r} is {short(v)}; expected text")


def mapping_cell(v: Any, where: str, field: str) -> dict:
    """A ``{llm: number}`` cell: a dict, a JSON string of one (CSV), or key/value pairs
    (a parquet map). ``None`` values (a parquet struct's absent keys) count as absent."""
    v = plain(v)
    if is_missing(v):
        return {}
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            raise DataError(f"{where}: {field!r} is {short(v)}; expected a {{llm: number}} mapping") from None
    if isinstance(v, list) and all(isinstance(kv, (list, tuple)) and len(kv) == 2 for kv in v):
        v = dict(v)
    if not isinstance(v, dict):
        raise DataError(f"{where}: {field!r} is {short(v)}; expected a {{llm: number}} mapping")
    return {str(k): plain(x) for k, x in v.items() if x is not None}


def conversation_cell(v: Any, where: str, field: str) -> list[dict] | None:
    v = plain(v)
    if is_missing(v):
        return None
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError:
            raise DataError(f"{where}: {field!r} is not JSON; expected [{{role, content}}, ...]") from None
    if not isinstance(v, list):
        raise DataError(f"{where}: {field!r} is {short(v)}; expected [{{role, content}}, ...]")
    turns = []
    for j, t in enumerate(v):
        t = plain(t)
        if not isinstance(t, dict) or not isinstance(t.get("content"), str):
            raise DataError(f"{where}: {field}[{j}] is {short(t)}; expected {{role, content}} with text content")
        turns.append({"role": str(t.get("role") or "user"), "content": t["content"]})
    return turns or None


def cluster_id_cell(v: Any, where: str, field: str) -> int | None:
    v = plain(v)
    if is_missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    elif isinstance(v, str) and v.strip().isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise DataError(f"{where}: {field!r} is {short(v)}; expected a non-negative integer")
    return v


def prompt_text(v: Any, where: str, field: str, first_only: bool = False) -> str:
    """A prompt cell as text. Some sources store the turns as a list, or as the repr /
    JSON of a list of strings ("['question text']"): join them, or take the first."""
    v = plain(v)
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
    return text_cell(v, where, field)


def check_score_type(score_type: str, where: str) -> str:
    if score_type not in SCORE_TYPES:
        raise DataError(f"{where}: score_type {score_type!r} is not one of {SCORE_TYPES}")
    return score_type


def make_record(where: str, **fields: Any) -> RoutingRecord:
    try:
        return RoutingRecord(**fields)
    except DataError as e:  # a bad score_type cell: add the place
        raise DataError(f"{where}: {e}") from None


def check_pool(
    pairs: Sequence[tuple[str, RoutingRecord]],
    llm_names: Sequence[str] | None,
    require_scores: bool = True,
    allow_partial: bool = False,
) -> list[str]:
    """Check every record against the pool (``llm_names``, else the first scored record's
    LLMs) and order its scores/costs by it; returns the pool."""
    pool = list(llm_names) if llm_names is not None else next((list(r.scores) for _, r in pairs if r.scores), [])
    for where, r in pairs:
        check_scores(r, pool, where, require_scores=require_scores, allow_partial=allow_partial)
        r.scores = {n: float(r.scores[n]) for n in pool if n in r.scores}
        if r.costs:
            r.costs = {n: float(r.costs[n]) for n in pool if n in r.costs}
    return pool


MISSING_SCORE_POLICIES = ("error", "drop_record", "mask")
DUPLICATE_ID_POLICIES = ("error", "keep_first", "suffix")


def apply_score_policies(
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
    for name, value, allowed in (("on_missing_score", on_missing_score, MISSING_SCORE_POLICIES),
                                 ("on_duplicate_id", on_duplicate_id, DUPLICATE_ID_POLICIES)):
        if value not in allowed:
            raise DataError(f"{p}: {name}={value!r}; expected one of {list(allowed)}")
    if pool is None:  # as check_pool: the first scored record's LLMs
        pool = next((list(r.scores) for _, r in pairs if r.scores), [])
    kept, dropped, masked = [], Counter(), Counter()
    for where, r in pairs:
        if not r.scores:  # label-only rows are not score rows
            kept.append((where, r))
            continue
        missing = [n for n in pool if is_missing(plain(r.scores.get(n)))]
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
    out = dedupe_ids(kept, on_duplicate_id, p)
    if not out and pairs:
        raise DataError(f"{p}: every record was dropped (on_missing_score={on_missing_score}); expected some rows "
                        "with every score")
    return out


def dedupe_ids(pairs: list[tuple[str, RoutingRecord]], on_duplicate_id: str, p: Path) -> list[tuple[str, RoutingRecord]]:
    """Repeated ids: ``error``, ``keep_first`` (later rows go; counted) or ``suffix`` (the k-th
    repeat gets id ``<id>#k``)."""
    out, seen, uses = [], {}, Counter()
    for where, r in pairs:
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
    return out


def finish(records: list[RoutingRecord], p: Path, expected: str) -> list[RoutingRecord]:
    if not records:
        raise DataError(f"{p}: no records; expected {expected}")
    seen: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.id in seen:
            raise DataError(f"{p}: records {seen[r.id]} and {i} share id {r.id!r}; expected unique ids")
        seen[r.id] = i
    return records


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
