"""cluster_id generation for RouterDC's cluster loss: embed the training queries, optionally
reduce the dimension, K-means them, and write new data files with a ``cluster_id`` per item.

    python -m router_lab.clusters                                    # split2 train files, MiniLM, 5 clusters
    python -m router_lab.clusters n_clusters=10 reduce=pca reduce_dim=32 seed=1
    python -m router_lab.clusters 'data.train=[my_train.json]'                # other split2-format files

Inputs are the data config's ``train`` sources (all clustered together, as the reference
notebook does). Outputs go to ``<run dir>/data/<input folder>/<input file>``, never over an
input: RouterDC JSON files keep every field and gain ``cluster_id``; other formats are
written as RoutingRecord JSONL (``loader: records``). The run prints the ``data.train``
overrides that train on them, and a task x cluster count table.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from router_lab.config_schema import ClustersConfig
from router_lab.data.loaders.saved import save_records_jsonl
from router_lab.data.records import RoutingRecord
from router_lab.data.sources import load_records, source_specs
from router_lab.encoders import embed_texts
from router_lab.errors import UserError, hydra_cli, run_main
from router_lab.files import check_output_is_not_input, write_atomic

log = logging.getLogger("router_lab.clusters")
REDUCTIONS = ("none", "pca", "tsne")


def training_sources(data_cfg: Mapping[str, Any]) -> list[dict]:
    """The data config's train specs, without ``n_items`` (whole files are clustered)."""
    specs = source_specs(data_cfg.get("train"), data_cfg.get("source"), "data.train")
    if not specs:
        raise UserError("data.train is empty; expected the training files to cluster")
    return [{k: v for k, v in s.items() if k != "n_items"} for s in specs]


def load_sources(specs: Sequence[dict], cache_dir: str | None = None,
                 max_items: int | None = None) -> list[list[RoutingRecord]]:
    """Records of each source (the first ``max_items`` of each when given)."""
    out = []
    for i, spec in enumerate(specs):
        recs, _ = load_records(spec, cache_dir, where=f"data.train[{i}] ({spec.get('path', spec.get('loader'))})")
        out.append(recs[:max_items] if max_items else recs)
    return out


def reduce_dimension(x: np.ndarray, method: str = "none", dim: int = 2, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, dim) by PCA or t-SNE; ``none`` returns x."""
    if method not in REDUCTIONS:
        raise UserError(f"reduce={method!r}; expected one of {list(REDUCTIONS)}")
    if method == "none":
        return x
    if dim < 1 or dim > x.shape[1]:
        raise UserError(f"reduce_dim={dim}; expected 1..{x.shape[1]} (the embedding size)")
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=min(dim, len(x)), random_state=seed).fit_transform(x)
    from sklearn.manifold import TSNE

    if dim > 3:
        raise UserError(f"reduce=tsne with reduce_dim={dim}; expected at most 3 (Barnes-Hut t-SNE)")
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    return TSNE(n_components=dim, random_state=seed, init="pca", perplexity=perplexity).fit_transform(x)


def kmeans_cluster_ids(x: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """(N,) K-means labels in 0..n_clusters-1."""
    from sklearn.cluster import KMeans

    if n_clusters < 1 or n_clusters > len(x):
        raise UserError(f"n_clusters={n_clusters}; expected 1..{len(x)} (the number of training queries)")
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(x).astype(np.int64)


def output_path(spec: Mapping[str, Any], out_dir: Path) -> Path:
    if not spec.get("path"):  # a generated source (the synthetic benchmark): <loader>/<split>.jsonl
        return Path(out_dir) / str(spec.get("loader", "records")) / f"{spec.get('split', 'train')}.jsonl"
    src = Path(str(spec["path"]))
    name = src.name if spec.get("loader") == "routerdc" else src.stem + ".jsonl"
    dest = Path(out_dir) / src.parent.name / name
    check_output_is_not_input(dest, [src], "output")  # inputs are never overwritten
    return dest


def write_with_cluster_ids(spec: Mapping[str, Any], records: Sequence[RoutingRecord], ids: np.ndarray,
                           out_dir: Path) -> Path:
    """A copy of the source with ``cluster_id`` set on each item; returns its path."""
    dest = output_path(spec, out_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if spec.get("loader") == "routerdc" and spec.get("path"):
        items = json.loads(Path(str(spec["path"])).read_text(encoding="utf-8"))[: len(records)]
        for item, cid in zip(items, ids):
            item["cluster_id"] = int(cid)
        return write_atomic(dest, json.dumps(items, ensure_ascii=False))
    import dataclasses

    return save_records_jsonl([dataclasses.replace(r, cluster_id=int(c)) for r, c in zip(records, ids)], dest)


def task_cluster_counts(tasks: Sequence[str], ids: np.ndarray) -> str:
    """A plain-text table: rows tasks, columns clusters, cells counts."""
    names = sorted(set(tasks))
    k = int(ids.max()) + 1
    tasks = np.asarray(tasks)
    rows = [["task"] + [str(c) for c in range(k)]]
    rows += [[t] + [str(int(((tasks == t) & (ids == c)).sum())) for c in range(k)] for t in names]
    w = [max(len(r[i]) for r in rows) for i in range(k + 1)]
    return "\n".join("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows)


def generate(cfg: DictConfig) -> dict:
    """Embed, reduce, cluster, write. Returns {"files": [...], "cluster_ids": array, ...}."""
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    specs = training_sources(data_cfg)
    per_source = load_sources(specs, cfg.paths.cache_dir, cfg.get("max_items_per_file"))
    records = [r for rs in per_source for r in rs]
    log.info("clustering %d queries from %d files", len(records), len(specs))
    x = embed_texts([r.text for r in records], OmegaConf.to_container(cfg.encoder, resolve=True),
                    cache_dir=cfg.paths.cache_dir)
    z = reduce_dimension(x, cfg.reduce, int(cfg.reduce_dim), int(cfg.seed))
    ids = kmeans_cluster_ids(z, int(cfg.n_clusters), int(cfg.seed))
    out_dir = Path(cfg.output_dir)
    files, start = [], 0
    for spec, rs in zip(specs, per_source):
        files.append(write_with_cluster_ids(spec, rs, ids[start : start + len(rs)], out_dir))
        start += len(rs)
    print(task_cluster_counts([r.task for r in records], ids))
    print("\ntrain on them with:")
    train = data_cfg.get("train")
    if isinstance(train, list) and all(isinstance(s, Mapping) and s.get("loader") == "routerdc" for s in train):
        for i, f in enumerate(files):  # split2: same format, the spec keeps its n_items
            print(f"  data.train.{i}.path={f}")
    else:  # a spec naming its loader is read as is (routerdc files stay routerdc JSON)
        print("  'data.train=[" + ", ".join(f"{{loader: {'routerdc' if s.get('loader') == 'routerdc' else 'records'}, "
                                         f"path: {f}}}" for s, f in zip(specs, files)) + "]'")
    return {"files": files, "cluster_ids": ids, "embeddings": z, "tasks": [r.task for r in records]}


@hydra_cli("clusters", schema=ClustersConfig)
def main(cfg: DictConfig) -> None:
    from router_lab import console

    console.configure(bool((cfg.get("extras") or {}).get("verbose", False)))
    run_main(generate, cfg)


if __name__ == "__main__":
    main()
