"""ONNX Runtime for a router's encoder: the fastest way to route on CPU.

    router = Router.load("outputs/export/r", runtime="onnx")                  # float32
    router = Router.load("outputs/export/r", runtime="onnx", quantize="int8")  # int8 weights
    python -m router_lab.export ckpt_path=<run> out=DIR onnx=true             # build the files once
    python -m router_lab.route router=DIR runtime=onnx quantize=int8 query="..."

Only the encoder (backbone + pooling: token ids -> query embedding) runs in ONNX Runtime; the
router's head, policy and decisions stay in torch, so every router family works unchanged.
The encoder is exported with the TorchScript-based ``torch.onnx.export`` (dynamic batch and
sequence axes); ``quantize="int8"`` adds ONNX Runtime's dynamic quantisation (int8 weights,
per channel). Float32 gives the torch encoder's embeddings to ~1e-6; int8 changes them
slightly (``benchmarks/route_latency.py`` reports how many decisions change).

An export dir with ``onnx/encoder.onnx`` (and ``onnx/encoder.int8.onnx``) is used as is;
otherwise the files are built at load time in a temporary dir (a few seconds for MiniLM).
Needs the ``onnx`` extra: ``pip install -e ".[onnx]"`` (onnx + onnxruntime).
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from router_lab.errors import UserError

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
RUNTIMES = ("torch", "onnx")


def onnx_file(quantize: str | None) -> str:
    return "encoder.int8.onnx" if quantize == "int8" else "encoder.onnx"


def require_onnx() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"runtime=onnx needs {' and '.join(missing)}; install them with "
                        "pip install -e \".[onnx]\" (or use runtime=torch)")


def export_encoder(encoder: torch.nn.Module, out_dir: str | os.PathLike, quantize: str | None = None) -> Path:
    """Write ``encoder`` (``forward(input_ids, attention_mask) -> (B, D)``) as ONNX into
    ``out_dir`` (``encoder.onnx``; with ``quantize="int8"`` also ``encoder.int8.onnx``);
    returns the file for ``quantize``. Files appear complete or not at all."""
    require_onnx()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / onnx_file(None)
    if not fp32.exists():
        device = next(encoder.parameters()).device
        ids = torch.ones(2, 8, dtype=torch.long, device=device)
        mask = torch.ones(2, 8, dtype=torch.long, device=device)
        tmp = fp32.with_name(fp32.name + ".tmp")
        was_training = encoder.training
        encoder.eval()
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python ints
                torch.onnx.export(encoder, (ids, mask), str(tmp), input_names=["input_ids", "attention_mask"],
                                  output_names=["embedding"], opset_version=17, dynamo=False,
                                  dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                                "attention_mask": {0: "batch", 1: "seq"},
                                                "embedding": {0: "batch"}})
            os.replace(tmp, fp32)
        finally:
            tmp.unlink(missing_ok=True)
            encoder.train(was_training)
    if quantize is None:
        return fp32
    if quantize != "int8":
        raise UserError(f"quantize={quantize!r}; expected int8 (or none)")
    q = out / onnx_file("int8")
    if not q.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = q.with_name("tmp." + q.name)  # keeps the .onnx suffix the quantiser expects
        quiet = logging.getLogger()
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "consider pre-processing" advice on every call
        try:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
            os.replace(tmp, q)
        finally:
            quiet.setLevel(level)
            tmp.unlink(missing_ok=True)
    return q


class OnnxEncoder:
    """An ONNX Runtime session with the encoder's signature: ``(input_ids, attention_mask) ->
    embedding`` (torch tensors in and out, CPU)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        require_onnx()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # ORT's threads otherwise spin for a while after each run, on the cores the torch head
        # and the next tokenisation need: measured +3 ms per query on 2 cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise UserError(f"{self.path}: not a loadable ONNX encoder ({type(e).__name__}: {str(e)[:200]}); "
                            "delete it to rebuild, or export again with onnx=true") from None

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64, copy=False),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64, copy=False)}
        return torch.from_numpy(self.session.run(None, feeds)[0])


def load_onnx_encoder(encoder: torch.nn.Module, source_dir: Path | None, quantize: str | None,
                      threads: int | None = None) -> OnnxEncoder:
    """The ONNX encoder for a router: ``source_dir/onnx/<file>`` when the export has it, else
    built now in a temporary dir (removed once the session holds the model)."""
    require_onnx()
    if source_dir is not None and (source_dir / ONNX_DIR / onnx_file(quantize)).is_file():
        return OnnxEncoder(source_dir / ONNX_DIR / onnx_file(quantize), threads)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="router_lab_onnx_"))
    try:
        enc = OnnxEncoder(export_encoder(encoder, tmp, quantize), threads)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("built the ONNX encoder in %.1f s (python -m router_lab.export ... onnx=true stores it with the "
             "router)", time.perf_counter() - t0)
    return enc
