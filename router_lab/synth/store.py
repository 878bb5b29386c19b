"""Run-dir I/O: the append-only item log and atomic final files.

``items.jsonl`` holds one line per finished work item (accepted or rejected, with its
outputs), appended and flushed as soon as the item finishes: a killed run loses at most
the items in flight, and a resumed run skips every item already logged. Final files are
written to ``<name>.tmp`` and renamed, so nothing half-written looks like a result.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

from router_lab.files import write_atomic


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """``files.write_atomic`` into a run dir that may not exist yet."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(p, text)


def read_jsonl_rows(path: Path) -> Iterator[dict]:
    """The JSON objects of an append-only log, skipping a line torn by a kill (also one cut
    inside a multi-byte character)."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            yield row


class JsonlAppender:
    """Thread-safe append-only JSONL, opened on the first row, flushed per line (survives
    ``kill -9``); rows appended after ``close()`` are dropped; no path: writes nothing."""

    def __init__(self, path: Path | None):
        self.path = path
        self._lock = threading.Lock()
        self._fh = None
        self._closed = False

    def append(self, row: dict) -> None:
        if self.path is None:
            return
        with self._lock:
            if self._closed:
                return
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def atomic_save_dataset(ds, path: str | os.PathLike) -> Path:
    """``ds.save_to_disk`` into ``<path>.tmp``, then swap it in."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    old = p.with_name(p.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    ds.save_to_disk(str(tmp))
    shutil.rmtree(old, ignore_errors=True)
    if p.exists():
        os.replace(p, old)
    os.replace(tmp, p)
    shutil.rmtree(old, ignore_errors=True)
    return p


class ItemLog:
    """Append-only JSONL of ``{"item": index, ...}`` results; the last line may be torn by a kill."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.done: dict[int, dict] = {}
        self._lock = threading.Lock()
        if self.path.exists():
            good = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    idx = int(row["item"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue
                if idx not in self.done:
                    self.done[idx] = row
                    good.append(line)
            # Rewrite without torn or repeated lines so appends start on a clean line.
            atomic_write_text(self.path, "".join(l + "\n" for l in good))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def append(self, row: dict) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self.done[int(row["item"])] = row
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()
