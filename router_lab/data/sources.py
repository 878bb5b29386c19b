"""Turn a source spec from the config into records, via the Arrow dataset cache.

A source spec is a mapping with a ``loader`` name and that loader's arguments::

    {loader: routerdc, path: /data/split2_model7/mmlu_test.json}
    {loader: synthetic, split: train, seed: 0}
    {loader: table, path: my.jsonl, columns: {query: prompt}}

``load_source`` looks the loader up in ``router_lab.data.loaders.LOADERS`` and stores the
result as a HF ``datasets.Dataset`` under ``cache_dir/datasets/<key>``: the key covers the spec,
the file's size and mtime and the code that reads and checks it, so an edited file (or a changed
loader) is re-read and an unchanged one is not.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from router_lab.data.loaders import LOADERS
from router_lab.data.records import DataError, RoutingRecord, dataset_llm_names, dataset_to_records, records_to_dataset

log = logging.getLogger(__name__)


def resolve_loader(spec: Mapping[str, Any], where: str = "data") -> tuple[Callable, dict]:
    """The loader function and its keyword arguments, checked against its signature."""
    spec = dict(spec)
    name = spec.pop("loader", None)
    spec.pop("optional", None)  # a source-spec key (``source_specs``), not the loader's
    if name not in LOADERS:
        raise DataError(f"{where}: loader {name!r} is unknown; expected one of {sorted(LOADERS)}")
    fn = LOADERS[name]
    try:
        inspect.signature(fn).bind(**spec)
    except TypeError as e:
        raise DataError(f"{where}: loader {name!r} does not take these arguments ({e}); "
                        f"its signature is {name}{inspect.signature(fn)}") from None
    return fn, spec


@functools.lru_cache(maxsize=None)
def _code_stamp(loader_file: str | None) -> str:
    """A digest of the code that reads and checks records (the loader's source file, the shared
    loader helpers, the record checks): a new release's stricter checks re-read cached files."""
    from router_lab.data import records
    from router_lab.data.loaders import common

    h = hashlib.sha1()
    for f in (loader_file, inspect.getsourcefile(common), inspect.getsourcefile(records)):
        h.update(Path(f).read_bytes() if f and Path(f).is_file() else str(f).encode())
    return h.hexdigest()[:12]


def _spec_key(spec: Mapping[str, Any]) -> str:
    fn = LOADERS.get(spec.get("loader"))
    try:
        code = _code_stamp(inspect.getsourcefile(fn)) if fn is not None else ""
    except TypeError:  # not a plain Python function: no file to digest
        code = _code_stamp(None)
    stamp = {}
    path = spec.get("path")
    if path and Path(str(path)).exists():
        p = Path(str(path))
        files = [p] if p.is_file() else sorted(x for x in p.rglob("*") if x.is_file())
        stamp = {str(f): [f.stat().st_size, int(f.stat().st_mtime)] for f in files[:1000]}
    blob = json.dumps({"spec": spec, "files": stamp, "code": code, "v": 1}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


def load_source(spec: Mapping[str, Any], cache_dir: str | os.PathLike | None = None, where: str = "data"):
    """Records of one source as a ``datasets.Dataset`` (scores aligned to the file's LLMs)."""
    from datasets import load_from_disk

    spec = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(spec).items()}
    fn, kwargs = resolve_loader(spec, where)
    if "path" in kwargs and kwargs["path"] is not None and not Path(str(kwargs["path"])).exists():
        raise DataError(f"{where}: file {kwargs['path']} does not exist; expected a data file "
                        "(set paths.data_dir or the source's path)")
    target = Path(cache_dir) / "datasets" / _spec_key(spec) if cache_dir else None
    if target is not None and (target / "dataset_info.json").exists():
        try:
            return load_from_disk(str(target))
        except Exception as e:  # a damaged cache entry is rebuilt, not fatal
            log.warning("dataset cache %s unreadable (%s); rebuilding", target, e)
    records = fn(**kwargs)
    if not records:
        raise DataError(f"{where}: source {spec} produced no records; expected at least one")
    ds = records_to_dataset(records, list(dict.fromkeys(n for r in records for n in r.scores)))
    if target is not None:
        tmp = target.parent / f".tmp-{uuid.uuid4().hex[:8]}"
        ds.save_to_disk(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:  # another job cached it first
            shutil.rmtree(tmp, ignore_errors=True)
        ds = load_from_disk(str(target))
    return ds


def source_specs(x: Any, source: Mapping[str, Any] | None = None, where: str = "data") -> list[dict]:
    """One spec per file of a split (``data.train`` / ``data.val`` / one test set): ``x`` is a
    file path, a glob (``dir/*_train.csv``, sorted matches), a spec, or a list of them. A path
    is read with ``source``, the data config's loader and its settings; a spec is merged onto
    ``source`` (its keys win) unless it names another loader. ``data.train=[a.csv,b.csv]`` is so
    the one way to list files. A glob matching nothing (or a missing file) is an error unless
    its spec says ``optional: true`` (then: no file)."""
    import glob

    from omegaconf import OmegaConf

    specs = []
    for i, item in enumerate([] if x is None else list(x) if isinstance(x, (list, tuple)) else [x]):
        if isinstance(item, (str, os.PathLike)):
            item = {"path": str(item)}
        if not isinstance(item, Mapping):
            raise DataError(f"{where}[{i}]: {item!r} is neither a file path nor a source spec; expected "
                            f"{where}=FILE, {where}=[FILE, ...] or {{loader: NAME, path: FILE}}")
        same_loader = source and item.get("loader", source.get("loader")) == source.get("loader")
        item = OmegaConf.to_container(OmegaConf.merge(dict(source), dict(item))) if same_loader else dict(item)
        if not item.get("loader"):
            raise DataError(f"{where}[{i}]: {item} names no loader and this data config has no `source` to "
                            "read files with; expected {loader: NAME, path: FILE}")
        optional = bool(item.pop("optional", False))
        paths = item.get("path")
        for path in paths if isinstance(paths, (list, tuple)) else [paths]:
            if path is None or not glob.has_magic(str(path)):
                if not (optional and (path is None or not Path(str(path)).exists())):
                    specs.append({**item, "path": path} if path is not None else item)
                continue
            matches = sorted(glob.glob(str(path)))
            if not matches and not optional:
                raise DataError(f"{where}: no file matches {path}; expected at least one (check data.dir / the path)")
            specs += [{**item, "path": m} for m in matches]
    return specs


def load_records(spec: Mapping[str, Any], cache_dir=None, where: str = "data") -> tuple[list[RoutingRecord], list[str]]:
    ds = load_source(spec, cache_dir, where)
    return dataset_to_records(ds), dataset_llm_names(ds)
