"""CLINC150 intents (``loader: clinc150``): ``clinc150_train_val.json`` + ``domains.json`` as label-only records."""
from __future__ import annotations

import os
from pathlib import Path

from router_lab.data.loaders.common import existing_file, finish, read_json, short
from router_lab.data.records import DataError, RoutingRecord, stable_id


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
    p = existing_file(path)
    if label not in ("domain", "intent"):
        raise DataError(f"{p}: label is {label!r}; expected 'domain' or 'intent'")
    dp = existing_file(domains_path if domains_path is not None else p.with_name("domains.json"))
    intent_domain = _clinc_domains(dp)
    data = read_json(p)
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
                raise DataError(f"{where}: {short(row)}; expected [text, intent]")
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
    return finish(records, p, f"[text, intent] rows in split {split!r}")


def _clinc_domains(dp: Path) -> dict[str, str]:
    data = read_json(dp)
    if not isinstance(data, dict):
        raise DataError(f"{dp}: top level is a JSON {type(data).__name__}; expected {{domain: [intent, ...]}}")
    intent_domain: dict[str, str] = {}
    for domain, intents in data.items():
        if not isinstance(intents, list) or not all(isinstance(x, str) for x in intents):
            raise DataError(f"{dp}: domain {domain!r} is {short(intents)}; expected a list of intent names")
        for intent in intents:
            if intent in intent_domain:
                raise DataError(f"{dp}: intent {intent!r} is in domains {intent_domain[intent]!r} and {domain!r}")
            intent_domain[intent] = domain
    return intent_domain
