"""Export a trained router as a self-contained directory that ``Router.load`` reads
without Hydra or the training config tree.

    python -m router_lab.export ckpt_path=outputs/train/runs/<run>/checkpoints/best.ckpt out=outputs/export/my_router
    python -m router_lab.export ckpt_path=outputs/train/runs/<run> out=DIR route_map=conf/route_maps/example.yaml
    python -m router_lab.export ckpt_path=... out=DIR onnx=true      # + the encoder for ONNX Runtime

Writes (atomically: a temporary sibling dir, then a rename; ``overwrite=true`` replaces only an
earlier export dir, one that carries the ``.router_lab_export`` marker):

    DIR/router.yaml         class (_target_), hyper-parameters (data_info, encoder spec with
                            pretrained: encoder), LLM pool, pooling, policy (thresholds, cost_lambda),
                            route map, where it came from
    DIR/model.safetensors   the LightningModule's state dict
    DIR/encoder/            the backbone (save_pretrained, safetensors) and its tokenizer; for
                            frozen routers, the backbone they were trained with
    DIR/onnx/               with onnx=true: encoder.onnx and encoder.int8.onnx, which
                            Router.load(DIR, runtime="onnx"[, quantize="int8"]) uses as they are
    DIR/.router_lab_export  the marker: this dir was written by router_lab.export

The route map written into DIR is a suggestion: whoever loads DIR uses its endpoints (URLs,
key variables) only with route_map=... or trust_export=true (README "Security model").
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import yaml

from router_lab.api import ENCODER_DIR, EXPORT_FORMAT, EXPORT_MARKER, ROUTER_YAML, WEIGHTS, Router, load_route_map
from router_lab.config_schema import ExportConfig
from router_lab.errors import UserError, hydra_cli, run_main
from router_lab.files import check_output_is_not_input, check_replaceable_dir, write_atomic

log = logging.getLogger("router_lab.export")


def plain(obj: Any) -> Any:
    """Hyper-parameters as YAML-safe primitives (OmegaConf containers, tuples, numpy scalars)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(obj, (DictConfig, ListConfig)):
            obj = OmegaConf.to_container(obj, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return obj.item()
    return obj


def write_router_yaml(root: Path, meta: dict) -> None:
    write_atomic(root / ROUTER_YAML, yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))


def export_router(router: Router, out: str | Path, route_map: dict | None = None, overwrite: bool = False,
                  source: str | None = None, onnx: bool = False) -> Path:
    """Write ``router`` as an export dir at ``out`` (see the module docstring)."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise UserError(f"out={out} already exists; expected a new directory (or overwrite=true)")
        check_replaceable_dir(out, EXPORT_MARKER)
    if source:
        check_output_is_not_input(out, [source], "out")
    out = out.parent.resolve() / out.name  # '.', '..' were refused above
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        model = router.model
        backbone = router.encoder.backbone
        backbone.save_pretrained(tmp / ENCODER_DIR, safe_serialization=True)
        router.tokenizer.save_pretrained(tmp / ENCODER_DIR)
        # Clones: safetensors refuses tensors that share storage (tied weights).
        state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        hp = plain(dict(model.hparams))
        hp["encoder"] = {**plain(dict(hp["encoder"])), "pretrained": ENCODER_DIR}
        rm = route_map if route_map is not None else (router.route_map if router.route_map.get("endpoints")
                                                      else router.suggested_route_map or router.route_map)
        meta = {
            "format": EXPORT_FORMAT,
            "_target_": router.target,
            "llm_pool": {"llms": [{"name": n, **({"cost": router.llm_costs[i]} if router.llm_costs else {})}
                                  for i, n in enumerate(router.model_llm_names)]},
            "encoder": {"name": router.spec.name, "pooling": router.spec.pooling, "max_length": router.spec.max_length,
                        "truncation_side": router.spec.truncation_side, "frozen": router.spec.frozen},
            "policy": router.policy.to_config(),
            "route_map": plain(rm or {}),
            "source": source or router.meta.get("source", ""),
            "hparams": hp,
        }
        write_router_yaml(tmp, meta)
        if onnx:
            from router_lab.onnx_runtime import ONNX_DIR, export_encoder

            export_encoder(router.encoder, tmp / ONNX_DIR, quantize="int8")
        (tmp / EXPORT_MARKER).write_text(EXPORT_FORMAT + "\n")
        old = None
        if out.exists():  # an earlier export (checked above): set aside, swap in, then delete
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("exported %s -> %s", router.target, out)
    return out


def export(opts: ExportConfig) -> Path:
    if not opts.ckpt_path or not opts.out:
        raise UserError("expected ckpt_path=PATH (a .ckpt or a run dir) and out=DIR")
    if Path(opts.out).exists() and not opts.overwrite:  # before loading the model (that takes a while)
        raise UserError(f"out={opts.out} already exists; expected a new directory (or overwrite=true)")
    rm = load_route_map(opts.route_map) if opts.route_map else None
    if opts.out and (Path(opts.out).exists() or Path(opts.out).is_symlink()):  # before loading anything
        if not opts.overwrite:
            raise UserError(f"out={opts.out} already exists; expected a new directory (or overwrite=true)")
        check_replaceable_dir(opts.out, EXPORT_MARKER)
    router = Router.load(opts.ckpt_path, route_map=rm)
    out = export_router(router, opts.out, rm, overwrite=opts.overwrite, source=str(opts.ckpt_path), onnx=opts.onnx)
    print(out)
    return out


@hydra_cli("export", schema=ExportConfig, options=True)
def main(opts: ExportConfig) -> Path:
    from router_lab import console

    console.configure()
    return run_main(export, opts)


if __name__ == "__main__":
    main()
