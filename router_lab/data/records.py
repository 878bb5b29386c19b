"""The one routing-record type, and its Arrow (HF ``datasets``) storage.

Every source (RouterDC JSON, RouterBench, Chatbot-Arena pairs, CLINC150, generic tables,
the built-in synthetic benchmark, the LLM-backed generator) converts to
:class:`RoutingRecord` at the edge; nothing downstream knows the file format.

    from router_lab.data.records import RoutingRecord, records_to_dataset
    rec = RoutingRecord(id="q1", query="What is 2+2?", task="gsm8k",
                        scores={"llm-a": 1.0, "llm-b": 0.0}, score_type="multi_attempt")
    ds = records_to_dataset([rec], llm_names=["llm-a", "llm-b"])

Storage layout: one row per record; ``scores`` / ``costs`` are lists aligned with the
dataset's LLM order, which is kept in ``ds.info.description`` (JSON) so a saved dataset
reloads with its pool. Missing costs are an empty list, missing label ``""`` and missing
cluster ``-1`` (Arrow has no per-cell None for every type we need).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from router_lab.errors import UserError

SCORE_TYPES = ("multi_attempt", "probability")


class DataError(UserError):
    """A user-fixable problem with input data; its message is one line naming the
    file/record/field and what was expected."""


@dataclass
class RoutingRecord:
    """One routing example, whatever its source.

    ``query`` is the text to route; for a multi-turn example ``conversation`` holds the
    turns (``[{"role": "user", "content": ...}, ...]``) and ``query`` defaults to their
    rendered text. ``scores`` maps LLM name -> quality of that LLM's answer
    (``multi_attempt``: fraction of correct sampled attempts; ``probability``:
    probability of the correct choice, 0 when wrong, as RouterDC defines them).
    """

    id: str
    query: str = ""
    conversation: list[dict] | None = None
    task: str = "default"
    scores: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] | None = None
    label: str | None = None
    cluster_id: int | None = None
    score_type: str = "probability"

    def __post_init__(self) -> None:
        if not self.query and self.conversation:
            self.query = render_conversation(self.conversation)
        if self.score_type not in SCORE_TYPES:
            raise DataError(
                f"record {self.id!r}: score_type {self.score_type!r} is not one of {SCORE_TYPES}"
            )

    @property
    def text(self) -> str:
        """The text a router encodes: the query, or the rendered conversation."""
        return self.query


def render_conversation(turns: Sequence[dict]) -> str:
    """Flatten a conversation so the router sees every turn, most recent last."""
    return "\n".join(f"{t.get('role', 'user')}: {t.get('content', '')}" for t in turns)


def stable_id(*parts: object) -> str:
    """A short, deterministic id from the parts that identify a record."""
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return h[:16]


def check_scores(
    record: RoutingRecord,
    llm_names: Sequence[str],
    where: str,
    require_scores: bool = True,
    allow_partial: bool = False,
) -> None:
    """Raise DataError (one line) when scores are missing, name LLMs outside the pool,
    miss some pool LLMs (unless ``allow_partial``: preference pairs score two LLMs only),
    or hold NaN/infinite/negative values (or, for ``multi_attempt``, scores above 1)."""
    if not record.scores:
        if require_scores:
            raise DataError(f"{where}: record {record.id!r} has no scores; expected one per LLM in {list(llm_names)}")
        return
    unknown = [k for k in record.scores if k not in llm_names]
    if unknown:
        raise DataError(
            f"{where}: record {record.id!r} scores unknown LLM(s) {unknown}; the pool is {list(llm_names)}"
        )
    missing = [k for k in llm_names if k not in record.scores]
    if missing and not allow_partial:
        raise DataError(f"{where}: record {record.id!r} has no score for LLM(s) {missing}; expected one per LLM "
                        f"(data.allow_partial_scores=true, or data.source.on_missing_score=mask, trains on the "
                        f"scores there are)")
    # multi_attempt: the fraction of correct attempts, in [0, 1].
    bounded = record.score_type == "multi_attempt"
    for k, v in record.scores.items():
        if not _is_nonneg_number(v) or bounded and float(v) > 1.0:
            raise DataError(
                f"{where}: record {record.id!r} score for {k!r} is {v!r}; expected a "
                + ("fraction in [0, 1] (score_type multi_attempt)" if bounded else "number >= 0 (not NaN or infinite)")
            )
    if record.costs:
        for k, v in record.costs.items():
            if k not in llm_names:
                raise DataError(f"{where}: record {record.id!r} has a cost for unknown LLM {k!r}")
            if not _is_nonneg_number(v):
                raise DataError(f"{where}: record {record.id!r} cost for {k!r} is {v!r}; expected a number >= 0 (not NaN or infinite)")


def _is_nonneg_number(v: object) -> bool:
    if isinstance(v, (bool, str)) or v is None:
        return False
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return math.isfinite(f) and f >= 0


# ---------------------------------------------------------------- Arrow storage

def _features():
    from datasets import Features, Sequence as HFSeq, Value

    return Features(
        {
            "id": Value("string"),
            "query": Value("string"),
            "conversation": [{"role": Value("string"), "content": Value("string")}],
            "task": Value("string"),
            "scores": HFSeq(Value("float32")),
            "costs": HFSeq(Value("float32")),
            "label": Value("string"),
            "cluster_id": Value("int64"),
            "score_type": Value("string"),
        }
    )


def records_to_dataset(records: Iterable[RoutingRecord], llm_names: Sequence[str]):
    """Store records as a ``datasets.Dataset`` with scores aligned to ``llm_names``."""
    from datasets import Dataset, DatasetInfo

    llm_names = list(llm_names)
    cols: dict[str, list] = {k: [] for k in _features()}
    for r in records:
        cols["id"].append(r.id)
        cols["query"].append(r.query)
        cols["conversation"].append(
            [{"role": str(t.get("role", "user")), "content": str(t.get("content", ""))} for t in (r.conversation or [])]
        )
        cols["task"].append(r.task)
        # An LLM a record did not score (a preference pair scores two) is NaN in storage.
        cols["scores"].append([float(r.scores.get(n, math.nan)) for n in llm_names] if r.scores else [])
        cols["costs"].append([float(r.costs.get(n, 0.0)) for n in llm_names] if r.costs else [])
        cols["label"].append(r.label or "")
        cols["cluster_id"].append(-1 if r.cluster_id is None else int(r.cluster_id))
        cols["score_type"].append(r.score_type)
    features = _features()
    info = DatasetInfo(description=json.dumps({"llm_names": llm_names}), features=features)
    return Dataset.from_dict(cols, features=features, info=info)


def dataset_llm_names(ds) -> list[str]:
    """The LLM order a stored dataset's score lists follow."""
    try:
        return list(json.loads(ds.info.description or "{}").get("llm_names", []))
    except json.JSONDecodeError:
        return []


def dataset_to_records(ds) -> list[RoutingRecord]:
    names = dataset_llm_names(ds)
    return [RoutingRecord(
        id=row["id"], query=row["query"], conversation=list(row["conversation"]) or None, task=row["task"],
        scores={n: float(v) for n, v in zip(names, row["scores"]) if not math.isnan(v)},
        costs=dict(zip(names, row["costs"])) if row["costs"] else None, label=row["label"] or None,
        cluster_id=None if row["cluster_id"] < 0 else int(row["cluster_id"]), score_type=row["score_type"],
    ) for row in ds]
