"""Writing files without losing any: the one atomic writer and the checks every command
runs before it writes or deletes.

- ``write_atomic(path, text_or_bytes)`` / ``write_json_atomic(obj, path)``: a temporary
  sibling (unique per process), flushed and fsynced, then ``os.replace``d: a reader sees the
  old file or the whole new one, never half a result (metrics.json, results, predictions,
  reports, calibration, router.yaml).
- ``check_output_is_not_input(output, inputs)``: an output path equal to an input (also via
  a symlink or a hard link) is refused before anything is opened.
- ``check_replaceable_dir(path, marker)``: ``overwrite=true`` replaces only a directory that
  this project made (it carries ``marker``) and never ``.``, ``..``, home, the repository root
  or ``/``.
- ``check_path_part(name, what)``: a name that becomes part of a path (``task_name``, ...)
  has no separators and is not ``.``/``..``.
"""
from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterable

from router_lab.errors import UserError

PATH_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,@-]*$")


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary sibling and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as ``null`` (numpy scalars as Python numbers), so what
    the project writes is always valid JSON."""
    import math

    if hasattr(obj, "item") and type(obj).__module__ == "numpy":
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """``obj`` as strict JSON (:func:`json_safe`) to ``path``, atomically."""
    return write_atomic(path, json.dumps(json_safe(obj), indent=2, sort_keys=True, allow_nan=False))


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_is_not_input(output: str | Path, inputs: Iterable[str | Path], what: str = "output") -> None:
    """Refuse an output path that is (or resolves to) one of the inputs."""
    out = Path(output)
    for i in inputs:
        if i and _same(out, Path(i)):
            raise UserError(f"{what}={output} is the input file {i}; expected a different output path "
                            "(writing it would destroy the input)")


def protected_dirs() -> list[Path]:
    """Directories no command replaces: /, home, the repository root, the working dir and its parents."""
    from router_lab import ROOT

    cwd = Path.cwd().resolve()
    return [Path("/").resolve(), Path.home().resolve(), ROOT.resolve(), cwd, *cwd.parents]


def check_replaceable_dir(path: str | Path, marker: str, what: str = "out") -> None:
    """``path`` may be replaced (overwrite=true): a real directory carrying ``marker``, not a
    protected one."""
    p = Path(path)
    resolved = p.resolve()
    if p.name in ("", ".", "..") or resolved in protected_dirs():
        raise UserError(f"{what}={path} is {resolved} (the working dir, one above it, home, the repository root or /); "
                        "expected a directory of its own for overwrite=true")
    if p.is_symlink() or not p.is_dir():
        raise UserError(f"{what}={path} exists and is not a directory; expected a directory written by this "
                        "command (overwrite=true replaces nothing else)")
    m = p / marker
    if m.is_symlink() or not m.is_file():
        raise UserError(f"{what}={path} exists and has no {marker} marker, so this command did not write it; "
                        "expected a new path, or an old export dir for overwrite=true (remove it yourself if you "
                        "mean to)")


def check_path_part(name: Any, what: str) -> str:
    """A name that becomes one part of a path: letters, digits, ``_.+=,@-``; not ``.``/``..``."""
    s = str(name)
    if not PATH_PART.match(s) or s in (".", "..") or ".." in s.split("."):
        raise UserError(f"{what}={s!r}: not usable as a directory name; expected letters, digits and _.+=,@- "
                        "(no '/', no '..', not starting with '.' or '-')")
    return s
