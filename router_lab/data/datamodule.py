"""RouterDataModule: routing records -> batches, for every router family.

    python -m router_lab.train data=split2 encoder=minilm          # frozen MiniLM, cached embeddings
    python -m router_lab.train data=clinc150 data.label_field=intent

Sources (``train``, ``val``, ``test``) are loader specs (see ``router_lab.data.sources``);
``train`` may be a list (concatenated), ``test`` a mapping name -> spec (each reported
separately). Without ``val``/``test`` a seeded split stratified by task is carved out of
``train`` (by query text: every copy of a text on one side). Multi-task test sources are split per task (``test_split_by_task``), and test
sets are grouped into in-distribution (task seen in training) and out-of-distribution
groups, or into the groups named in ``test_groups``.

Frozen encoders: every text is embedded once through the on-disk cache and batches carry
``embedding``. Fine-tuning: batches carry ``input_ids``/``attention_mask`` padded to the
longest item of the batch (dynamic padding; ``pad_to_max_length`` pads to max length).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from router_lab.data.records import DataError, RoutingRecord, check_scores
from router_lab.data.sources import expand_paths, load_records
from router_lab.encoders import EncoderSpec, embed_texts, load_tokenizer
from router_lab.pool import LLMPool

log = logging.getLogger(__name__)


@dataclass
class RoutingSplit:
    """Arrays for one split / test set, aligned with the pool's LLM order."""

    name: str
    records: list[RoutingRecord]
    scores: np.ndarray  # (N, L), NaN where an LLM was not scored
    costs: np.ndarray | None  # (N, L) or None
    score_types: list[str]
    tasks: list[str]
    labels: np.ndarray  # (N,) category index, -1 unknown
    cluster_ids: np.ndarray  # (N,), -1 unknown
    task_ids: np.ndarray  # (N,)
    embeddings: np.ndarray | None = None
    group: str | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def has_scores(self) -> bool:
        return self.scores.size > 0 and not np.isnan(self.scores).all()

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.records]

    def effective_scores(self) -> np.ndarray:
        from router_lab.metrics import effective_scores

        return effective_scores(self.scores, self.score_types)


class _SplitDataset(Dataset):
    def __init__(self, split: RoutingSplit, frozen: bool):
        self.s = split
        self.frozen = frozen
        n, l = len(split), split.scores.shape[1] if split.scores.ndim == 2 else 0
        sc = np.nan_to_num(split.scores, nan=0.0) if l else np.zeros((n, 0), np.float32)
        self.scores = torch.as_tensor(sc, dtype=torch.float32)
        self.score_mask = torch.as_tensor(~np.isnan(split.scores) if l else np.zeros((n, 0), bool))
        self.costs = torch.as_tensor(split.costs, dtype=torch.float32) if split.costs is not None else None
        self.is_probability = torch.as_tensor([t == "probability" for t in split.score_types])
        self.emb = torch.as_tensor(split.embeddings) if frozen and split.embeddings is not None else None

    def __len__(self) -> int:
        return len(self.s)

    def __getitem__(self, i: int) -> dict:
        item = {
            "index": i,
            "scores": self.scores[i],
            "score_mask": self.score_mask[i],
            "label": int(self.s.labels[i]),
            "cluster_id": int(self.s.cluster_ids[i]),
            "task_id": int(self.s.task_ids[i]),
            "is_probability": self.is_probability[i],
        }
        if self.costs is not None:
            item["costs"] = self.costs[i]
        if self.emb is not None:
            item["embedding"] = self.emb[i]
        else:
            item["text"] = self.s.records[i].text
        return item


class Collate:
    """Stacks tensors; tokenizes text with dynamic padding (fine-tune mode)."""

    def __init__(self, tokenizer=None, max_length: int = 512, pad_to_max_length: bool = False):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pad_to_max_length = pad_to_max_length

    def __call__(self, items: list[dict]) -> dict:
        out: dict[str, Any] = {}
        for k in items[0]:
            if k == "text":
                continue
            vals = [it[k] for it in items]
            out[k] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else torch.as_tensor(vals)
        if "text" in items[0]:
            enc = self.tokenizer(
                [it["text"] for it in items],
                padding="max_length" if self.pad_to_max_length else "longest",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            out["input_ids"], out["attention_mask"] = enc["input_ids"], enc["attention_mask"]
        return out


def _as_list(x, where: str = "data") -> list:
    """Source specs, one per file: a spec or a list of specs, each ``path`` expanded
    (a list of paths or a glob: see ``sources.expand_paths``)."""
    if x is None:
        return []
    specs = [dict(x)] if isinstance(x, Mapping) and "loader" in x else [dict(s) for s in x]
    return [e for s in specs for e in expand_paths(s, where)]


class RouterDataModule(L.LightningDataModule):
    def __init__(
        self,
        train: Any,
        val: Any = None,
        test: Mapping[str, Any] | None = None,
        llm_pool: Mapping[str, Any] | None = None,
        encoder: Mapping[str, Any] | None = None,
        split: Mapping[str, Any] | None = None,
        test_split_by_task: bool = True,
        test_groups: Any = "auto",
        label_source: str = "auto",
        allow_partial_scores: bool = False,
        require_scores: bool = False,
        batch_size: int = 64,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        cache_dir: str | None = None,
        pad_to_max_length: bool = False,
        device: str = "cpu",
        path: str | None = None,
        dir: str | None = None,
        truncation_side: str | None = None,
    ):
        """``path`` / ``dir``: a base file or directory the source specs may interpolate
        (``${data.path}``, ``${data.dir}``), e.g. a generator run dir for
        ``data=synthetic_generated data.path=...``. ``truncation_side``: the side this data's
        long prompts should be cut from; the encoder configs read it (``encoder.truncation_side``
        wins when given)."""
        super().__init__()
        self.path = path
        self.dir = dir
        self.train_spec = train
        self.val_spec = val
        # One spec (``loader`` key; its path may list or glob several files) is the set
        # "test", split by task; otherwise a mapping name -> spec.
        self.test_spec = ({"test": dict(test)} if isinstance(test, Mapping) and "loader" in test else dict(test)) \
            if test else None
        self.pool_cfg = dict(llm_pool or {})
        self.encoder = EncoderSpec.from_config(encoder or {})
        self.split_cfg = {"val_fraction": 0.1, "test_fraction": 0.2, "seed": 0, **dict(split or {})}
        self.test_split_by_task = test_split_by_task
        self.test_groups_cfg = test_groups
        if label_source not in ("auto", "label", "best_llm"):
            raise DataError(f"data.label_source={label_source!r}; expected auto, label or best_llm")
        self.label_source = label_source
        self.allow_partial_scores = allow_partial_scores
        self.require_scores = require_scores
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.pad_to_max_length = pad_to_max_length
        self.device = device
        self._ready = False
        self.encode_stats: dict = {}
        self.train_set: RoutingSplit | None = None
        self.val_set: RoutingSplit | None = None
        self.test_sets: dict[str, RoutingSplit] = {}
        self.groups: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ loading
    def _load(self, specs: list[dict], where: str) -> tuple[list[RoutingRecord], list[str]]:
        records: list[RoutingRecord] = []
        names_by_source: dict[str, list[str]] = {}
        for i, spec in enumerate(specs):
            src = spec.get("path", spec.get("loader"))
            recs, names = load_records(spec, self.cache_dir, where=f"{where}[{i}] ({src})")
            records.extend(recs)
            names_by_source[str(src)] = names
        return records, names_by_source

    def _resolve_pool(self, names_by_source: dict[str, list[str]]) -> LLMPool:
        pool = LLMPool.from_config(self.pool_cfg)
        if pool:
            return pool
        # No pool configured: take the LLMs of the training data, in file order.
        names: list[str] = []
        for ns in names_by_source.values():
            names += [n for n in ns if n not in names]
        return LLMPool.from_names(names)

    def _to_split(self, name: str, records: list[RoutingRecord], where: str) -> RoutingSplit:
        if not records:
            raise DataError(f"{where}: {name!r} is empty after filtering; expected at least one record")
        names = self.pool.names
        has_scores = any(r.scores for r in records)
        if self.require_scores and not has_scores:
            raise DataError(f"{where}: {name!r} has no scores; this router needs per-LLM scores for {names}")
        if has_scores:
            for r in records:
                check_scores(r, names, where, require_scores=True, allow_partial=self.allow_partial_scores)
            scores = np.array([[r.scores.get(n, np.nan) for n in names] for r in records], dtype=np.float32)
        else:
            scores = np.zeros((len(records), 0), dtype=np.float32)
        costs = None
        if any(r.costs for r in records):
            costs = np.array([[(r.costs or {}).get(n, c) for n, c in zip(names, self.pool.costs)] for r in records],
                             dtype=np.float32)
        elif any(self.pool.costs):
            costs = np.tile(np.asarray(self.pool.costs, np.float32), (len(records), 1))
        return RoutingSplit(
            name=name, records=records, scores=scores, costs=costs,
            score_types=[r.score_type for r in records], tasks=[r.task for r in records],
            labels=np.full(len(records), -1, np.int64),
            cluster_ids=np.array([-1 if r.cluster_id is None else r.cluster_id for r in records], np.int64),
            task_ids=np.zeros(len(records), np.int64),
        )

    def _stratified_split(self, records: list[RoutingRecord], fraction: float, seed: int):
        """(kept, carved) with ``fraction`` of each task carved out, seeded. The carve is by
        query text: every copy of a text goes to the same side (files repeated to a fixed size,
        such as split2's, must not leak held-out items into training). A text is counted in
        the task of its first copy; groups are taken in a seeded order until the task's share
        is reached (without repeated texts this is exactly ``round(n * fraction)`` records)."""
        rng = np.random.default_rng(seed)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            groups.setdefault(r.text, []).append(i)
        by_task: dict[str, list[list[int]]] = {}
        for idx in groups.values():
            by_task.setdefault(records[idx[0]].task, []).append(idx)
        carved: set[int] = set()
        for task_groups in by_task.values():
            k = int(round(sum(map(len, task_groups)) * fraction))
            taken = 0
            for g in rng.permutation(len(task_groups)):
                if taken >= k:
                    break
                carved.update(task_groups[g])
                taken += len(task_groups[g])
        return [r for i, r in enumerate(records) if i not in carved], [r for i, r in enumerate(records) if i in carved]

    def setup(self, stage: str | None = None) -> None:
        """Load every split (cheap); with a frozen encoder, embed only what ``stage`` uses
        (fit: train + val; test/predict: nothing yet; None: everything). The other splits
        are embedded when their dataloader is first asked for, so a run that never tests
        never encodes its test sets."""
        if not self._ready:
            self._load_all()
        if self.encoder.frozen:
            wanted = {"fit": [self.train_set, self.val_set], "validate": [self.val_set]}.get(
                stage, [] if stage in ("test", "predict") else self._all_splits())
            self._embed(wanted)

    def _load_all(self) -> None:
        train_recs, names = self._load(_as_list(self.train_spec, "data.train"), "data.train")
        val_specs = self.val_spec
        test_named: dict[str, list[RoutingRecord]] = {}
        seed = int(self.split_cfg["seed"])
        # Optional test sources whose files are absent drop out; with none left, carve.
        test_specs = {k: sp for k, spec in (self.test_spec or {}).items()
                      if (sp := _as_list(spec, f"data.test.{k}"))}
        if self.test_spec and not test_specs:
            log.info("data.test: no test files found; carving a held-out test split (test_fraction=%s) out of train",
                     self.split_cfg["test_fraction"])
        if test_specs:
            for tname, spec in test_specs.items():
                recs, n2 = self._load(spec, f"data.test.{tname}")
                names.update(n2)
                test_named[tname] = recs
        else:
            train_recs, carved = self._stratified_split(train_recs, float(self.split_cfg["test_fraction"]), seed)
            test_named["test"] = carved
        if val_specs is None:
            train_recs, val_recs = self._stratified_split(train_recs, float(self.split_cfg["val_fraction"]), seed + 1)
        elif val_specs == "train":  # RouterDC's protocol: select checkpoints on the training sets
            val_recs = list(train_recs)
        else:
            val_recs, n2 = self._load(_as_list(val_specs, "data.val"), "data.val")
            names.update(n2)

        if not self.allow_partial_scores:
            # Score files of one experiment must score the same LLMs: name the two that don't.
            from router_lab.data.loaders import check_same_llms

            scored = {src: ns for src, ns in names.items() if ns}
            if len(scored) > 1:
                check_same_llms(scored)
        self.pool = self._resolve_pool(names)
        self.train_set = self._to_split("train", train_recs, "data.train")
        self.val_set = self._to_split("val", val_recs, "data.val")
        for tname, recs in test_named.items():
            tasks = sorted({r.task for r in recs})
            if self.test_split_by_task and len(tasks) > 1:
                for t in tasks:
                    self.test_sets[t] = self._to_split(t, [r for r in recs if r.task == t], f"data.test.{tname}")
            else:
                self.test_sets[tname] = self._to_split(tname, recs, f"data.test.{tname}")

        self._assign_tasks_and_labels()
        self._assign_groups()
        self._ready = True
        log.info("data: %d train, %d val, test sets %s; pool %s", len(self.train_set), len(self.val_set),
                 {k: len(v) for k, v in self.test_sets.items()}, self.pool.names)

    def _all_splits(self) -> list[RoutingSplit]:
        return [self.train_set, self.val_set, *self.test_sets.values()]

    def _assign_tasks_and_labels(self) -> None:
        self.tasks = sorted({t for t in self.train_set.tasks})
        extra = sorted({t for s in self._all_splits() for t in s.tasks} - set(self.tasks))
        task_index = {t: i for i, t in enumerate(self.tasks + extra)}
        for s in self._all_splits():
            s.task_ids = np.array([task_index[t] for t in s.tasks], np.int64)

        train_has_labels = any(r.label for r in self.train_set.records)
        source = self.label_source
        if source == "auto":
            source = "label" if train_has_labels else "best_llm"
        if source == "label" and not train_has_labels:
            raise DataError("data.label_source=label but the training records have no 'label'; "
                            "expected a category per record (or label_source=best_llm with scores)")
        if source == "best_llm" and not self.train_set.has_scores:
            raise DataError("data: the training records have neither labels nor scores; "
                            "expected a 'label' per record or per-LLM scores")
        self.label_kind = source
        if source == "label":
            self.categories = sorted({r.label for r in self.train_set.records if r.label})
            cat_index = {c: i for i, c in enumerate(self.categories)}
            for s in self._all_splits():
                s.labels = np.array([cat_index.get(r.label, -1) if r.label else -1 for r in s.records], np.int64)
        else:
            self.categories = list(self.pool.names)
            # Ties between best LLMs (common: several score 1.0) go to the LLM that is best
            # on average over training, not to whichever comes first in the pool.
            eff = self.train_set.effective_scores()
            prior = np.nanmean(eff, axis=0)
            self.train_mean_scores = prior
            for s in self._all_splits():
                if s.has_scores:
                    e = np.nan_to_num(s.effective_scores(), nan=-1.0)
                    best = e >= e.max(axis=1, keepdims=True) - 1e-9
                    s.labels = np.where(best, prior[None, :] + 10.0, -np.inf).argmax(axis=1).astype(np.int64)
        if self.train_set.has_scores:
            self.train_mean_scores = np.nanmean(self.train_set.effective_scores(), axis=0)

    def _assign_groups(self) -> None:
        cfg = self.test_groups_cfg
        seen = set(self.tasks)
        if cfg in (None, "none", False):
            self.groups = {}
        elif cfg == "auto":
            ind = [n for n, s in self.test_sets.items() if set(s.tasks) <= seen]
            ood = [n for n, s in self.test_sets.items() if not set(s.tasks) <= seen]
            self.groups = {k: v for k, v in {"in_distribution": ind, "out_of_distribution": ood}.items() if v}
        else:
            self.groups = {str(g): list(members) for g, members in dict(cfg).items()}
            for g, members in self.groups.items():
                unknown = [m for m in members if m not in self.test_sets]
                if unknown:
                    raise DataError(f"data.test_groups.{g} names unknown test set(s) {unknown}; "
                                    f"expected some of {sorted(self.test_sets)}")
        for g, members in self.groups.items():
            for m in members:
                self.test_sets[m].group = g

    def _embed(self, splits: list[RoutingSplit]) -> None:
        """Embed (through the cache) the given splits that have no embeddings yet, in one
        pass with one progress bar; ``encode_stats`` accumulates over calls."""
        splits = list({id(s): s for s in splits if s is not None and s.embeddings is None}.values())
        if not splits:
            return
        texts = [t for s in splits for t in s.texts]
        stats: dict = {}
        emb = embed_texts(texts, self.encoder, cache_dir=self.cache_dir, device=self.device, stats=stats)
        for k, v in stats.items():
            self.encode_stats[k] = self.encode_stats.get(k, 0) + v
        start = 0
        for s in splits:
            s.embeddings = emb[start : start + len(s)]
            start += len(s)

    # ------------------------------------------------------------------ info for models
    def info(self) -> dict:
        """Primitive facts about the data a router needs to build itself (saved in its
        hyper-parameters so a checkpoint reloads without the data)."""
        assert self._ready, "call setup() first"
        from router_lab.encoders import hidden_size

        return {
            "llm_names": list(self.pool.names),
            # The pool's costs, or the mean per-record cost on training data when the pool has none.
            "llm_costs": [float(c) for c in (self.pool.costs if any(self.pool.costs) or self.train_set.costs is None
                                             else self.train_set.costs.mean(axis=0))],
            "categories": list(self.categories),
            "label_kind": self.label_kind,
            "tasks": list(self.tasks),
            "embedding_dim": int(self.train_set.embeddings.shape[1]) if self.train_set.embeddings is not None
            else hidden_size(self.encoder),
            "train_mean_scores": [float(x) for x in getattr(self, "train_mean_scores", [])],
            "has_scores": bool(self.train_set.has_scores),
            # RouterDC's cluster loss needs cluster ids on every training record.
            "has_cluster_ids": bool((self.train_set.cluster_ids >= 0).all()),
            "num_clusters": int(self.train_set.cluster_ids.max() + 1) if len(self.train_set) else 0,
            # (tasks x LLMs) mean effective score per training task: a capability profile.
            "task_mean_scores": self._task_mean_scores(),
        }

    def _task_mean_scores(self) -> list[list[float]]:
        if not self.train_set.has_scores:
            return []
        eff = self.train_set.effective_scores()
        tasks = np.array(self.train_set.tasks)
        rows = []
        for t in self.tasks:
            m = np.nanmean(eff[tasks == t], axis=0)
            rows.append([float(x) if not np.isnan(x) else 0.0 for x in m])
        return rows

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: RoutingSplit, shuffle: bool, batch_size: int) -> DataLoader:
        if self.encoder.frozen:
            self._embed([split])
        tok = None if self.encoder.frozen else self._tokenizer()
        return DataLoader(
            _SplitDataset(split, self.encoder.frozen),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=Collate(tok, self.encoder.max_length, self.pad_to_max_length),
            persistent_workers=self.num_workers > 0,
        )

    def _tokenizer(self):
        if not hasattr(self, "_tok"):
            self._tok = load_tokenizer(self.encoder)
        return self._tok

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False, self.eval_batch_size)

    def test_dataloader(self) -> list[DataLoader]:
        if self.encoder.frozen:
            self._embed(list(self.test_sets.values()))  # all test sets in one pass
        return [self._loader(s, False, self.eval_batch_size) for s in self.test_sets.values()]

    def predict_dataloader(self) -> list[DataLoader]:
        return self.test_dataloader()

    @property
    def test_set_names(self) -> list[str]:
        return list(self.test_sets)
