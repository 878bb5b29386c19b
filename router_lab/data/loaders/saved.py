"""The project's own formats: records JSONL (``loader: records``, written by
:func:`save_records_jsonl`: run dirs' val/test.jsonl, clusters, synth) and a saved
``datasets`` directory (``loader: hf_disk``)."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Sequence

from router_lab.data.loaders.common import (
    cluster_id_cell, conversation_cell, existing_file, first_line, finish, make_record, mapping_cell, read_jsonl, short,
    text_cell,
)
from router_lab.data.records import DataError, RoutingRecord, check_scores, dataset_llm_names, dataset_to_records
from router_lab.files import write_atomic


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(RoutingRecord))


def save_records_jsonl(records: Sequence[RoutingRecord], path: str | os.PathLike) -> Path:
    """Write one ``dataclasses.asdict(record)`` per line, atomically (``files.write_atomic``)."""
    p, lines = Path(path), []
    for r in records:
        try:
            lines.append(json.dumps(dataclasses.asdict(r), ensure_ascii=False, allow_nan=False) + "\n")
        except ValueError:
            raise DataError(f"{p}: record {r.id!r} holds NaN or infinity; JSON cannot store it") from None
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(p, "".join(lines))


def load_records_jsonl(path: str | os.PathLike) -> list[RoutingRecord]:
    """Records written by :func:`save_records_jsonl`."""
    p = existing_file(path)
    records = []
    for where, obj in read_jsonl(p):
        unknown = sorted(set(obj) - set(_RECORD_FIELDS))
        if unknown:
            raise DataError(f"{where}: unknown field(s) {unknown}; expected RoutingRecord fields {list(_RECORD_FIELDS)}")
        if not isinstance(obj.get("id"), str) or not obj["id"]:
            raise DataError(f"{where}: 'id' is {short(obj.get('id'))}; expected a non-empty string")
        costs = mapping_cell(obj.get("costs"), where, "costs")
        label = obj.get("label")
        rec = make_record(
            where,
            id=obj["id"],
            query=text_cell(obj.get("query"), where, "query"),
            conversation=conversation_cell(obj.get("conversation"), where, "conversation"),
            task=text_cell(obj.get("task"), where, "task") or "default",
            scores=mapping_cell(obj.get("scores"), where, "scores"),
            costs=costs or None,
            label=None if label is None else text_cell(label, where, "label"),
            cluster_id=cluster_id_cell(obj.get("cluster_id"), where, "cluster_id"),
            score_type=obj.get("score_type", "probability"),
        )
        if not rec.query.strip():
            raise DataError(f"{where}: neither 'query' nor 'conversation' holds text; expected a query or a conversation")
        # A record's own LLMs are its pool: this checks values, not membership.
        check_scores(rec, list(dict.fromkeys([*rec.scores, *(rec.costs or {})])), where, require_scores=False)
        records.append(rec)
    return finish(records, p, "one JSON RoutingRecord per line")


def load_saved_dataset(path: str | os.PathLike) -> list[RoutingRecord]:
    """A ``datasets`` directory saved from :func:`records_to_dataset` (``ds.save_to_disk``)."""
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"{p}: no such directory; expected a dataset saved with records_to_dataset(...).save_to_disk()")
    from datasets import Dataset, load_from_disk

    try:
        ds = load_from_disk(str(p))
    except Exception as e:  # datasets raises FileNotFoundError/ValueError/... for a non-dataset folder
        raise DataError(f"{p}: not a saved `datasets` directory ({first_line(e)})") from None
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
    return finish(dataset_to_records(ds), p, "a non-empty dataset")
