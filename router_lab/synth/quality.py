"""Quality figures of a generated set: distinct-n, histograms, pass rates."""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

_WORD = re.compile(r"\w+")


def distinct_n(texts: Iterable[str], n: int = 2) -> float:
    """Distinct n-grams / all n-grams over the corpus (Li et al., 2016)."""
    total, uniq = 0, set()
    for t in texts:
        w = _WORD.findall(t.lower())
        grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
        total += len(grams)
        uniq.update(grams)
    return len(uniq) / total if total else 0.0


def histogram(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0])))


def layer_pass_rates(n_in: int, rejected_by_layer: Counter, layers: Sequence[str]) -> dict[str, dict]:
    """Layers run in order; each sees what the previous passed."""
    out, remaining = {}, n_in
    for layer in layers:
        r = int(rejected_by_layer.get(layer, 0))
        out[layer] = {"in": remaining, "rejected": r, "pass_rate": round((remaining - r) / remaining, 4) if remaining else 0.0}
        remaining -= r
    return out
