"""Pooling on hand-built tensors; the embedding cache; encoder config errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from router_lab.encoders import EncoderError, EncoderSpec, EmbeddingCache, cache_key, embed_texts, pool


def hidden():
    # batch of 2, 3 positions, dim 2; row 0 has 2 real tokens (right padding), row 1 has 3.
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]],
                      [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]])
    m = torch.tensor([[1, 1, 0], [1, 1, 1]])
    return h, m


def test_cls_pooling_takes_the_first_real_token():
    h, m = hidden()
    assert pool(h, m, "cls").tolist() == [[1.0, 2.0], [0.0, 1.0]]
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])  # left padding: first real token is position 1
    assert pool(h, left, "cls").tolist() == [[3.0, 4.0], [0.0, 1.0]]


def test_mean_pooling_ignores_padding():
    h, m = hidden()
    assert pool(h, m, "mean").tolist() == [[2.0, 3.0], [2.0, 3.0]]


def test_last_token_pooling_with_right_and_left_padding():
    h, m = hidden()
    assert pool(h, m, "last_token").tolist() == [[3.0, 4.0], [4.0, 5.0]]
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert pool(h, left, "last_token").tolist() == [[9.0, 9.0], [4.0, 5.0]]


def test_spec_rejects_unknown_keys_and_bad_values():
    with pytest.raises(EncoderError, match="unknown key"):
        EncoderSpec.from_config({"name": "x", "poolin": "mean"})
    with pytest.raises(EncoderError, match="pooling"):
        EncoderSpec.from_config({"pooling": "max"})
    with pytest.raises(EncoderError, match="truncation_side"):
        EncoderSpec.from_config({"truncation_side": "middle"})


def test_unloadable_model_is_one_clear_error(tmp_path):
    spec = {"name": "missing", "pretrained": str(tmp_path / "nope")}
    with pytest.raises(EncoderError, match="cannot load"):
        embed_texts(["a"], spec, cache_dir=None, progress=False)


def test_cache_key_depends_on_pooling_max_length_and_truncation(tiny_bert):
    base = EncoderSpec(name="t", pretrained=str(tiny_bert))
    keys = {cache_key(base), cache_key(EncoderSpec(name="t", pretrained=str(tiny_bert), pooling="cls")),
            cache_key(EncoderSpec(name="t", pretrained=str(tiny_bert), max_length=8)),
            cache_key(EncoderSpec(name="t", pretrained=str(tiny_bert), truncation_side="left"))}
    assert len(keys) == 4


def test_second_encoding_comes_from_cache_and_matches(tiny_bert, tmp_path):
    spec = {"name": "tiny", "pretrained": str(tiny_bert), "max_length": 16}
    texts = ["route me to the math model", "write a poem", "route me to the math model", "hello"]
    first, second = {}, {}
    a = embed_texts(texts, spec, cache_dir=tmp_path, progress=False, stats=first)
    b = embed_texts(texts, spec, cache_dir=tmp_path, progress=False, stats=second)
    # Counted per distinct text: the duplicate is encoded once, and a cold cache has no hits.
    assert (first["misses"], first["hits"], first["unique"]) == (3, 0, 3)
    assert second["misses"] == 0 and second["hits"] == 3
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a[0], a[2])
    # A new text only encodes that text; an unreadable shard is skipped, not fatal.
    (EmbeddingCache(tmp_path, EncoderSpec.from_config(spec)).dir / "shard-bad.npz").write_bytes(b"junk")
    third = {}
    embed_texts(texts + ["new one"], spec, cache_dir=tmp_path, progress=False, stats=third)
    assert third["misses"] == 1
