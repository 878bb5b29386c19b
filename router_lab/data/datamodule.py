"""RouterDataModule: routing records -> batches, for every router family.

    python -m router_lab.train data=split2 encoder=minilm          # frozen MiniLM, cached embeddings
    python -m router_lab.train data=files 'data.train=[a.jsonl,b.jsonl]'   # several training files

``train``, ``val`` and ``test`` name files (a path, a glob, a loader spec or a list of
them, concatenated), read with the data config's ``source`` (``sources.source_specs``);
``test`` may also map names to files (each reported separately). Without ``val``/``test``
a seeded split stratified by task is carved out of ``train`` (by query text: every copy of
a text on one side). Multi-task test sources are split per task (``test_split_by_task``),
and test sets are grouped into in-distribution (task seen in training) and
out-of-distribution groups, or into the groups named in ``test_groups``.

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
from torch.utils.data import DataLoader, Dataset, default_collate

from router_lab.data.loaders.common import check_same_llms
from router_lab.data.records import DataError, RoutingRecord, check_scores
from router_lab.data.sources import load_records, source_specs
from router_lab.encoders import EncoderSpec, embed_texts, load_tokenizer
from router_lab.metrics import effective_scores
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
        return effective_scores(self.scores, self.score_types)


class _SplitDataset(Dataset):
    def __init__(self, split: RoutingSplit, frozen: bool):
        self.s = split
        self.scores = torch.as_tensor(np.nan_to_num(split.scores, nan=0.0), dtype=torch.float32)  # (N, L) or (N, 0)
        self.score_mask = torch.as_tensor(~np.isnan(split.scores))
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
        texts = [it.pop("text") for it in items] if "text" in items[0] else None
        out = default_collate(items)
        if texts is not None:
            enc = self.tokenizer(
                texts,
                padding="max_length" if self.pad_to_max_length else "longest",
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            out["input_ids"], out["attention_mask"] = enc["input_ids"], enc["attention_mask"]
        return out


class RouterDataModule(L.LightningDataModule):
    def __init__(
        self,
        train: Any,
        source: Mapping[str, Any] | None = None,
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
        ``data=synthetic_generated data.path=...``. ``source``: the loader and settings that
        file paths in ``train`` / ``val`` / ``test`` are read with (``sources.source_specs``).
        ``truncation_side``: the side this data's
        long prompts should be cut from; the encoder configs read it (``encoder.truncation_side``
        wins when given)."""
        super().__init__()
        self.path = path
        self.dir = dir
        self.train_spec = train
        self.source = dict(source or {})
        self.val_spec = val
        # Files (a path, a spec or a list) are the set "test", split by task; otherwise a
        # mapping name -> files.
        is_files = not isinstance(test, Mapping) or "loader" in test or "path" in test
        self.test_spec = ({"test": test} if is_files else dict(test)) if test else None
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
        self.query_prep: str | None = None
        #: True when no test files were found and the test split was carved out of train
        self.test_carved = False
        self.encode_stats: dict = {}
        self.train_set: RoutingSplit | None = None
        self.val_set: RoutingSplit | None = None
        self.test_sets: dict[str, RoutingSplit] = {}
        self.groups: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ loading
    def _load(self, specs: list[dict], where: str) -> tuple[list[RoutingRecord], list[str]]:
        records, names_by_source = [], {}
        for i, spec in enumerate(specs):
            src = spec.get("path", spec.get("loader"))
            # on_missing_score: mask (every spec carries data.source's keys) asks for records with
            # some LLMs unscored: they are allowed.
            if spec.get("on_missing_score") == "mask":
                self.allow_partial_scores = True
            recs, names = load_records(spec, self.cache_dir, where=f"{where}[{i}] ({src})")
            records.extend(recs)
            names_by_source[str(src)] = names
        return records, names_by_source

    def _resolve_pool(self, names_by_source: dict[str, list[str]]) -> LLMPool:
        """The one pool check: score files of one experiment score the same LLMs (the
        error names two that don't), and the pool is the configured one, else the LLMs of
        the data in file order. Records are checked against it as their split is built."""
        scored = {src: ns for src, ns in names_by_source.items() if ns}
        if not self.allow_partial_scores and len(scored) > 1:
            check_same_llms(scored)
        return LLMPool.from_config(self.pool_cfg) or LLMPool.from_names(
            list(dict.fromkeys(n for ns in names_by_source.values() for n in ns)))

    def _scores(self, name: str, records: list[RoutingRecord], where: str) -> np.ndarray:
        """(N, L) scores in pool order, NaN where unscored; (N, 0) for label-only data."""
        if not records:
            raise DataError(f"{where}: {name!r} is empty after filtering; expected at least one record")
        names = self.pool.names
        if not any(r.scores for r in records):
            if self.require_scores:
                raise DataError(f"{where}: {name!r} has no scores; this router needs per-LLM scores for {names}")
            return np.zeros((len(records), 0), dtype=np.float32)
        for r in records:
            check_scores(r, names, where, require_scores=True, allow_partial=self.allow_partial_scores)
        return np.array([[r.scores.get(n, np.nan) for n in names] for r in records], dtype=np.float32)

    def _split(self, name: str, records: list[RoutingRecord], where: str, scores: np.ndarray | None = None,
               group: str | None = None) -> RoutingSplit:
        """One split, whole: arrays aligned with the pool, task ids and labels."""
        scores = self._scores(name, records, where) if scores is None else scores
        costs = None
        if any(r.costs for r in records):
            costs = np.array([[(r.costs or {}).get(n, c) for n, c in zip(self.pool.names, self.pool.costs)]
                              for r in records], dtype=np.float32)
        elif any(self.pool.costs):
            costs = np.tile(np.asarray(self.pool.costs, np.float32), (len(records), 1))
        score_types = [r.score_type for r in records]
        if self.label_kind == "label":
            labels = [self._category_index.get(r.label, -1) if r.label else -1 for r in records]
        elif scores.size and not np.isnan(scores).all():
            # Ties between best LLMs (common: several score 1.0) go to the LLM that is best
            # on average over training, not to whichever comes first in the pool.
            e = np.nan_to_num(effective_scores(scores, score_types), nan=-1.0)
            best = e >= e.max(axis=1, keepdims=True) - 1e-9
            labels = np.where(best, self.train_mean_scores[None, :] + 10.0, -np.inf).argmax(axis=1)
        else:
            labels = [-1] * len(records)
        return RoutingSplit(
            name=name, records=records, scores=scores, costs=costs, score_types=score_types,
            tasks=[r.task for r in records], labels=np.asarray(labels, np.int64),
            cluster_ids=np.array([-1 if r.cluster_id is None else r.cluster_id for r in records], np.int64),
            task_ids=np.array([self._task_index[r.task] for r in records], np.int64), group=group,
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
        """Records of every source -> the pool -> labelling facts of train -> whole splits."""
        train_specs = source_specs(self.train_spec, self.source, "data.train")
        train_recs, names = self._load(train_specs, "data.train")
        # What the loader did to every training query that a deployed router must do to the
        # queries it is sent (saved in info(); router_lab.api.QUERY_PREP applies it).
        self.query_prep = "final_question" if train_specs and all(
            sp.get("loader") == "routerbench" and sp.get("strip_few_shot") for sp in train_specs) else None
        seed = int(self.split_cfg["seed"])
        # Optional test sources whose files are absent drop out; with none left, carve.
        test_specs = {k: sp for k, spec in (self.test_spec or {}).items()
                      if (sp := source_specs(spec, self.source, f"data.test.{k}"))}
        if self.test_spec and not test_specs:
            log.info("data.test: no test files found; carving a held-out test split (test_fraction=%s) out of train",
                     self.split_cfg["test_fraction"])
        test_named: dict[str, list[RoutingRecord]] = {}
        for tname, spec in test_specs.items():
            test_named[tname], n2 = self._load(spec, f"data.test.{tname}")
            names.update(n2)
        self.test_carved = not test_specs
        if not test_specs:
            train_recs, test_named["test"] = self._stratified_split(
                train_recs, float(self.split_cfg["test_fraction"]), seed)
        if self.val_spec is None:
            train_recs, val_recs = self._stratified_split(train_recs, float(self.split_cfg["val_fraction"]), seed + 1)
        elif self.val_spec == "train":  # RouterDC's protocol: select checkpoints on the training sets
            val_recs = list(train_recs)
        else:
            val_recs, n2 = self._load(source_specs(self.val_spec, self.source, "data.val"), "data.val")
            names.update(n2)
        self.pool = self._resolve_pool(names)

        # Test sets: one per name, or one per task of a multi-task source.
        tests: list[tuple[str, list[RoutingRecord], str]] = []
        for tname, recs in test_named.items():
            tasks = sorted({r.task for r in recs})
            if self.test_split_by_task and len(tasks) > 1:
                tests += [(t, [r for r in recs if r.task == t], f"data.test.{tname}") for t in tasks]
            else:
                tests.append((tname, recs, f"data.test.{tname}"))
        self.tasks = sorted({r.task for r in train_recs})
        extra = sorted({r.task for recs in [val_recs, *(t[1] for t in tests)] for r in recs} - set(self.tasks))
        self._task_index = {t: i for i, t in enumerate(self.tasks + extra)}
        self.groups = self._test_groups({n: {r.task for r in recs} for n, recs, _ in tests})
        group_of = {m: g for g, members in self.groups.items() for m in members}

        train_scores = self._scores("train", train_recs, "data.train")
        self._set_labelling(train_recs, train_scores)
        self.train_set = self._split("train", train_recs, "data.train", train_scores)
        self.val_set = self._split("val", val_recs, "data.val")
        self.test_sets = {n: self._split(n, recs, where, group=group_of.get(n)) for n, recs, where in tests}
        self._ready = True
        log.info("data: %d train, %d val, test sets %s; pool %s", len(self.train_set), len(self.val_set),
                 {k: len(v) for k, v in self.test_sets.items()}, self.pool.names)

    def _all_splits(self) -> list[RoutingSplit]:
        return [self.train_set, self.val_set, *self.test_sets.values()]

    def _set_labelling(self, records: list[RoutingRecord], scores: np.ndarray) -> None:
        """What the labels are (``label_kind``, ``categories``) and ``train_mean_scores``
        (per-LLM mean effective score on train; None without scores), from train only."""
        has_scores = scores.size > 0 and not np.isnan(scores).all()
        self.train_mean_scores = np.nanmean(effective_scores(scores, [r.score_type for r in records]), axis=0) \
            if has_scores else None
        train_has_labels = any(r.label for r in records)
        source = self.label_source
        if source == "auto":
            source = "label" if train_has_labels else "best_llm"
        if source == "label" and not train_has_labels:
            raise DataError("data.label_source=label but the training records have no 'label'; "
                            "expected a category per record (or label_source=best_llm with scores)")
        if source == "best_llm" and not has_scores:
            raise DataError("data: the training records have neither labels nor scores; "
                            "expected a 'label' per record or per-LLM scores")
        self.label_kind = source
        self.categories = sorted({r.label for r in records if r.label}) if source == "label" else list(self.pool.names)
        self._category_index = {c: i for i, c in enumerate(self.categories)}

    def _test_groups(self, test_tasks: dict[str, set[str]]) -> dict[str, list[str]]:
        """Test set groups: in/out of distribution (``auto``: are its tasks seen in
        training?), none, or the configured ``{group: [test set, ...]}``."""
        cfg = self.test_groups_cfg
        if cfg in (None, "none", False):
            return {}
        if cfg == "auto":
            seen = set(self.tasks)
            ind = [n for n, ts in test_tasks.items() if ts <= seen]
            ood = [n for n, ts in test_tasks.items() if not ts <= seen]
            return {k: v for k, v in {"in_distribution": ind, "out_of_distribution": ood}.items() if v}
        groups = {str(g): list(members) for g, members in dict(cfg).items()}
        for g, members in groups.items():
            unknown = [m for m in members if m not in test_tasks]
            if unknown:
                raise DataError(f"data.test_groups.{g} names unknown test set(s) {unknown}; "
                                f"expected some of {sorted(test_tasks)}")
        return groups

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
            "train_mean_scores": [] if self.train_mean_scores is None else [float(x) for x in self.train_mean_scores],
            "has_scores": bool(self.train_set.has_scores),
            # RouterDC's cluster loss needs cluster ids on every training record.
            "has_cluster_ids": bool((self.train_set.cluster_ids >= 0).all()),
            "num_clusters": int(self.train_set.cluster_ids.max() + 1) if len(self.train_set) else 0,
            # (tasks x LLMs) mean effective score per training task: a capability profile.
            "task_mean_scores": self._task_mean_scores(),
            # The text a query is reduced to before encoding (None: as sent), in training and routing.
            "query_prep": self.query_prep,
        }

    def _task_mean_scores(self) -> list[list[float]]:
        if not self.train_set.has_scores:
            return []
        eff, tasks = self.train_set.effective_scores(), np.array(self.train_set.tasks)
        return [np.nan_to_num(np.nanmean(eff[tasks == t], axis=0)).tolist() for t in self.tasks]

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
