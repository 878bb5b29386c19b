"""Exact and near-duplicate removal over texts, first occurrence kept.

Exact: the whitespace/case-normalised text's hash. Near: MinHash (``datasketch``) over word
n-gram shingles with an LSH index at a Jaccard ``threshold``. Order matters (the first
wins), so callers pass texts in a deterministic order (item index).
"""
from __future__ import annotations

import hashlib
import re
from typing import Sequence

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    return _WS.sub(" ", text.lower()).strip()


def shingles(text: str, n: int = 3) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words)} if words else {""}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def find_duplicates(texts: Sequence[str], method: str = "minhash", threshold: float = 0.85,
                    num_perm: int = 64, shingle: int = 3) -> dict[int, tuple[str, int]]:
    """Index -> (``"exact"`` | ``"near"``, index of the kept text it duplicates)."""
    dups: dict[int, tuple[str, int]] = {}
    seen: dict[str, int] = {}
    for i, t in enumerate(texts):
        h = hashlib.sha1(normalise(t).encode("utf-8")).hexdigest()
        if h in seen:
            dups[i] = ("exact", seen[h])
        else:
            seen[h] = i
    if method in ("none", "exact", None):
        return dups
    if method != "minhash":
        raise ValueError(f"synth.dedup.method is {method!r}; expected none, exact or minhash")
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: dict[int, MinHash] = {}
    for i, t in enumerate(texts):
        if i in dups:
            continue
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles(t, shingle)])
        # LSH finds candidates; the estimated Jaccard decides, so the threshold means what it says.
        hits = [int(j) for j in lsh.query(m) if hashes[int(j)].jaccard(m) >= threshold]
        if hits:
            dups[i] = ("near", min(hits))
        else:
            lsh.insert(str(i), m)
            hashes[i] = m
    return dups
