"""The one loader of trained routers: a run dir, a checkpoint inside one, or an export dir.

    from router_lab.runs import load_router_model, load_run_datamodule
    model, meta = load_router_model("outputs/train/runs/<run>")          # or .../best.ckpt, or an export dir

Every command that reads a trained router (``eval``, ``report``'s per-query decisions,
``Router.load`` and so ``route``/``serve``/``export``/``calibrate``) comes through here, and
so does ``train``'s resume checkpoint (``check_checkpoint``).

Trust boundary (README "Security model"): run dirs, checkpoints and export dirs are *data*,
safe to load from strangers. Nothing read from them is instantiated or imported by name:

- the router class comes from ``FAMILIES``, the allow-list of the project's own router
  families; a ``_target_`` in ``.hydra/config.yaml`` or ``router.yaml`` only *selects* a
  registered family, anything else is one ``error:`` line (exit 2) before any import;
- a saved run's data config may only name ``DATA_MODULES`` and may not use OmegaConf
  resolvers (``${oc.env:...}`` and friends) outside ``paths``;
- checkpoints load with ``torch.load(weights_only=True)`` (tensors and primitives only);
  export weights are safetensors; hyper-parameters must match the family's ``__init__``.

A corrupt, truncated or foreign file ends in one ``UserError`` naming it.

Adding a router family: its module under ``router_lab/models/`` and its
``conf/model/<name>.yaml``; ``FAMILIES`` is read from those configs (the project's own,
trusted tree), never from a saved file.
"""
from __future__ import annotations

import importlib
import inspect
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from router_lab.errors import UserError

def discover_families() -> dict[str, str]:
    """The project's router families, name -> ``module.Class``: the ``_target_`` of each
    ``conf/model/<name>.yaml`` of the package's own (trusted) config tree, and only classes
    under ``router_lab.models``. A new family is its module and its config; nothing else."""
    from router_lab import CONF_DIR

    found = {}
    for f in sorted((CONF_DIR / "model").glob("*.yaml")):
        target = (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("_target_")
        if isinstance(target, str) and target.startswith("router_lab.models."):
            found[f.stem] = target
    return found


#: The router families a saved file may name (the allow-list): name -> ``module.Class``.
FAMILIES: dict[str, str] = discover_families()
#: The data modules a saved run config may name.
DATA_MODULES: tuple[str, ...] = ("router_lab.data.datamodule.RouterDataModule",)

EXPORT_FORMAT = "router_lab.export/1"
EXPORT_MARKER = ".router_lab_export"  # written into every export dir; overwrite=true replaces only those
ROUTER_YAML = "router.yaml"
WEIGHTS = "model.safetensors"
ENCODER_DIR = "encoder"
EXPORT_KEYS = {"format", "_target_", "llm_pool", "encoder", "policy", "route_map", "source", "hparams", "calibration"}
URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
RESOLVER_RE = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
#: Resolvers a saved config may call: they only read other nodes of the same config.
SAFE_RESOLVERS = ("oc.select",)


# ------------------------------------------------------------------ families

def family_name(target: str) -> str | None:
    """The registered family whose class path is ``target`` (None when it is not one)."""
    for name, path in FAMILIES.items():
        if path == target:
            return name
    return None


def family_class(target: Any, where: str) -> type:
    """The router class a saved ``_target_`` selects; only registered families are imported."""
    if not isinstance(target, str) or family_name(target) is None:
        raise UserError(f"{where}: _target_={target!r} is not a router_lab router family; expected one of "
                        f"{sorted(FAMILIES.values())} (saved configs are data: nothing else is imported)")
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


def check_hparams(cls: type, hp: Any, where: str) -> dict:
    """``hp`` as keyword arguments of ``cls.__init__``: a mapping with every required
    hyper-parameter and no unknown one."""
    if not isinstance(hp, Mapping):
        raise UserError(f"{where}: hyper-parameters are a {type(hp).__name__}; expected a mapping")
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        known = None
    else:
        known = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    required = {p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = sorted(required - set(hp))
    extra = sorted(set(hp) - known) if known is not None else []
    if missing or extra:
        what = "; ".join(x for x in (f"missing {missing}" if missing else "",
                                     f"unknown {extra}" if extra else "") if x)
        raise UserError(f"{where}: hyper-parameters do not fit {cls.__name__} ({what}); expected the ones "
                        "router_lab saved with this router")
    info = hp.get("data_info")
    if "data_info" in hp:
        names = info.get("llm_names") if isinstance(info, Mapping) else None
        cats = info.get("categories") if isinstance(info, Mapping) else None
        # a label (category) router may have no LLM pool of its own; then it needs its categories
        if (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
                or not (names or (isinstance(cats, list) and cats))):
            raise UserError(f"{where}: data_info.llm_names is {names!r}; expected a non-empty list of LLM names "
                            "(or, for a category router, its categories)")
    return dict(hp)


# ------------------------------------------------------------------ saved configs are data

def read_yaml(path: Path, what: str) -> dict:
    """A YAML mapping, read with the safe loader (no Python tags)."""
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read it ({type(e).__name__}); expected {what}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]}); expected {what}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: a YAML {type(obj).__name__}; expected {what} (a mapping)")
    return obj


def _check_data(node: Any, where: str, allowed_targets: tuple[str, ...] | None, key: str = "") -> None:
    """Below ``node``: no resolver interpolation (``${oc.env:...}``, ...) and, unless
    ``allowed_targets`` is None, no ``_target_`` but one of ``allowed_targets`` at the top."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            k = str(k)
            if k == "_target_" and allowed_targets is not None and (key.count(".") or v not in allowed_targets):
                raise UserError(f"{where}: {key}._target_={v!r} is not allowed; expected "
                                f"{list(allowed_targets)} (saved configs are data: nothing else is instantiated)")
            _check_data(v, where, allowed_targets, f"{key}.{k}" if key else k)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            _check_data(v, where, allowed_targets, f"{key}[{i}]")
    elif isinstance(node, str):
        m = next((m for m in RESOLVER_RE.finditer(node) if m.group(1) not in SAFE_RESOLVERS), None)
        if m:
            raise UserError(f"{where}: {key}={node!r} calls the resolver {m.group(1)!r}; expected plain values, "
                            f"${{node}} references and {list(SAFE_RESOLVERS)} in a saved config (it is data)")


def find_run_config(path: Path) -> Path:
    """``<run>/.hydra/config.yaml`` of a run dir or of a checkpoint inside one."""
    for d in [path, *path.parents][:4]:
        f = d / ".hydra" / "config.yaml"
        if f.is_file():
            return f
    raise UserError(f"{path}: no .hydra/config.yaml in it or above it; expected an export dir, "
                    "a run dir or a checkpoint inside one (<run>/checkpoints/best.ckpt)")


def load_run_config(path: Path):
    """A saved run config as an (unresolved) DictConfig, checked to be data: its model is a
    registered family, its data a registered data module, and nothing kept calls a resolver."""
    from omegaconf import OmegaConf

    f = find_run_config(path)
    raw = read_yaml(f, "a Hydra run config saved by router_lab.train")
    model = raw.get("model")
    if not isinstance(model, Mapping):
        raise UserError(f"{f}: no model section; expected a config saved by router_lab.train")
    family_class(model.get("_target_"), f"{f}: model")
    # Only what a router and its data need is kept (model, data, encoder, pool, top-level
    # values); logger/callbacks/trainer/paths are dropped (paths: this machine's are used).
    targets = {"model": (model.get("_target_"),), "data": DATA_MODULES, "encoder": (), "llm_pool": ()}
    kept = {k: v for k, v in raw.items() if k in targets or not isinstance(v, (Mapping, list))}
    for k, v in kept.items():
        _check_data(v, str(f), targets.get(str(k), ()), str(k))
    return OmegaConf.create(kept), f


def default_paths(output_dir: str | Path) -> dict:
    """This machine's ``paths`` (conf/paths/default.yaml) with ``output_dir``: what a saved
    run config is resolved with instead of its own."""
    from omegaconf import OmegaConf

    from router_lab import CONF_DIR

    cfg = OmegaConf.load(CONF_DIR / "paths" / "default.yaml")
    cfg.output_dir = str(output_dir)
    cfg.work_dir = str(Path.cwd())
    return OmegaConf.to_container(OmegaConf.create({"paths": cfg}), resolve=True)["paths"]


def build_datamodule(data_cfg, where: str, trusted_target: str | None = None):
    """The data module of a checked saved run config: its ``_target_`` must be one of
    ``DATA_MODULES`` (or ``trusted_target``, a data config from the user's command line)."""
    import hydra
    from omegaconf import OmegaConf

    allowed = DATA_MODULES + ((trusted_target,) if trusted_target else ())
    target = data_cfg.get("_target_") if data_cfg is not None else None
    if target not in allowed:
        raise UserError(f"{where}: data._target_={target!r}; expected one of {list(allowed)}")
    from omegaconf.errors import OmegaConfBaseException

    try:
        plain = OmegaConf.to_container(data_cfg, resolve=True) if OmegaConf.is_config(data_cfg) else dict(data_cfg)
    except OmegaConfBaseException as e:
        raise UserError(f"{where}: its data config does not resolve ({str(e).splitlines()[0]}); expected a config "
                        "saved by router_lab.train") from None
    _check_data(plain, where, allowed, "data")  # resolved: no target may have come in through a reference
    return hydra.utils.instantiate(plain, _convert_="all")


# ------------------------------------------------------------------ checkpoints

def checkpoint_of(path: str | Path) -> Path:
    """A .ckpt, or a run dir's ``checkpoints/best.ckpt`` (else its newest .ckpt)."""
    if URL_RE.match(str(path)):
        raise UserError(f"ckpt_path={path}: a URL; expected a local checkpoint file (download it first: it is then "
                        "loaded weights-only)")
    path = Path(path)
    if path.is_dir():
        ckpt = path / "checkpoints" / "best.ckpt"
        if ckpt.is_file():
            return ckpt
        cands = sorted((path / "checkpoints").glob("*.ckpt")) if (path / "checkpoints").is_dir() else []
        if not cands:
            raise UserError(f"{path}: missing checkpoints/best.ckpt; expected a router_lab run dir")
        return cands[-1]
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint; expected a .ckpt written by router_lab.train")
    return path


def _unpickling_error(path: Path, e: BaseException) -> UserError:
    if isinstance(e, pickle.UnpicklingError):
        globs = re.findall(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        what = f" (it names {globs[0]})" if globs else ""
        return UserError(f"{path}: not a weights-only checkpoint{what}: it holds Python objects that would run code "
                         "when unpickled, and checkpoints load weights-only; expected a .ckpt written by router_lab.train")
    first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return UserError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first}); expected a .ckpt written by "
                     "router_lab.train (truncated or corrupt?)")


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, weights-only (tensors and primitives; nothing is executed)."""
    import torch

    path = checkpoint_of(path)
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 -- any unreadable file is the user's data, one line
        raise _unpickling_error(path, e) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise UserError(f"{path}: no state_dict in it; expected a Lightning checkpoint written by router_lab.train")
    return ckpt


def check_checkpoint(path: str | Path) -> Path:
    """A resume checkpoint (``train ckpt_path=``): local, readable weights-only."""
    read_checkpoint(path)
    return checkpoint_of(path)


def load_checkpoint_model(ckpt: Path, target: str, where: str):
    """The family ``target`` restored from a checkpoint, weights only."""
    cls = family_class(target, where)
    ckpt = checkpoint_of(ckpt)
    contents = read_checkpoint(ckpt)
    check_hparams(cls, contents.get("hyper_parameters") or {}, f"{ckpt}")
    del contents
    try:
        model = cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 -- a checkpoint that does not fit its family
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UserError(f"{ckpt}: does not fit {target} ({type(e).__name__}: {first}); expected a checkpoint of "
                        "the family its run config names") from None
    return model.eval()


def load_run_model(path: Path):
    """(model, meta) of a run dir or a checkpoint inside one."""
    ckpt = checkpoint_of(path)
    cfg, f = load_run_config(ckpt.parent)
    target = str(cfg.model._target_)
    model = load_checkpoint_model(ckpt, target, f"{f}: model")
    return model, {"_target_": target, "source": str(ckpt)}


# ------------------------------------------------------------------ export dirs

def is_export_dir(path: Path) -> bool:
    return path.is_dir() and ((path / ROUTER_YAML).exists() or not (path / ".hydra").exists())


def load_export(root: Path):
    """(model, meta) of an export dir: router.yaml (data), model.safetensors, encoder/."""
    for name in (ROUTER_YAML, WEIGHTS, ENCODER_DIR):
        if not (root / name).exists():
            raise UserError(f"{root}: missing {name}; expected an export dir written by python -m router_lab.export "
                            f"({ROUTER_YAML}, {WEIGHTS}, {ENCODER_DIR}/)")
    f = root / ROUTER_YAML
    meta = read_yaml(f, "a router.yaml written by python -m router_lab.export")
    if meta.get("format") != EXPORT_FORMAT:
        raise UserError(f"{f}: format={meta.get('format')!r}; expected {EXPORT_FORMAT!r}")
    unknown = sorted(set(meta) - EXPORT_KEYS)
    if unknown:
        raise UserError(f"{f}: unknown key(s) {unknown}; expected some of {sorted(EXPORT_KEYS)}")
    for key in ("_target_", "hparams"):
        if key not in meta:
            raise UserError(f"{f}: no {key!r}; expected a file written by python -m router_lab.export")
    cls = family_class(meta["_target_"], str(f))
    hp = check_hparams(cls, meta["hparams"], f"{f}: hparams")
    _check_data(hp, str(f), (), "hparams")
    names = (hp.get("data_info") or {}).get("llm_names")
    pool = [l.get("name") if isinstance(l, Mapping) else l for l in ((meta.get("llm_pool") or {}).get("llms") or [])]
    if pool and pool != names:
        raise UserError(f"{f}: llm_pool {pool} differs from hparams.data_info.llm_names {names}; expected the "
                        "same LLMs in the same order")
    enc = hp.get("encoder")
    if not isinstance(enc, Mapping):
        raise UserError(f"{f}: hparams.encoder is {enc!r}; expected the encoder spec mapping")
    enc = dict(enc)
    rel = str(enc.get("pretrained", ENCODER_DIR))
    enc_dir = (root / rel).resolve()
    if Path(rel).is_absolute() or not enc_dir.is_relative_to(root.resolve()):
        raise UserError(f"{f}: hparams.encoder.pretrained={rel!r}; expected a directory inside the export dir "
                        f"({ENCODER_DIR})")
    enc["pretrained"] = str(enc_dir)
    hp["encoder"] = enc
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(root / WEIGHTS))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{root / WEIGHTS}: not readable safetensors ({str(e).splitlines()[0][:200]}); expected "
                        "the weights written by python -m router_lab.export (truncated?)") from None
    try:
        model = cls(**hp)
        missing, unexpected = model.load_state_dict(state, strict=False)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 -- weights / encoder that do not fit the router.yaml
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise UserError(f"{root}: cannot build {meta['_target_']} from it ({type(e).__name__}: {first}); expected "
                        "an export dir written by python -m router_lab.export, unmodified") from None
    if missing or unexpected:
        raise UserError(f"{root / WEIGHTS}: does not fit {meta['_target_']} (missing {list(missing)[:3]}, "
                        f"unexpected {list(unexpected)[:3]}); expected the weights exported with this router.yaml")
    return model.eval(), meta


def load_router_model(path: str | Path):
    """(model, meta, export_dir or None) of an export dir, a run dir or a .ckpt in a run dir."""
    p = Path(path)
    if URL_RE.match(str(path)):
        raise UserError(f"router={path}: a URL; expected a local export dir, run dir or .ckpt")
    if not p.exists():
        raise UserError(f"router={p}: no such file or directory; expected an export dir, a run dir or a .ckpt")
    if is_export_dir(p):
        model, meta = load_export(p)
        return model, meta, p
    model, meta = load_run_model(p)
    return model, meta, None


def load_run_datamodule(run_cfg, where: str, paths: Mapping | None = None, data=None):
    """The data module a saved run was tested on, resolved with this machine's ``paths``;
    ``data``: the user's own data config instead (its references resolve in the run's config)."""
    from omegaconf import OmegaConf, open_dict

    cfg = run_cfg.copy()
    with open_dict(cfg):
        if paths is not None:
            cfg.paths = OmegaConf.create(dict(paths))
        if data is not None:
            cfg.data = data
    if data is not None:
        # The user's data config, now that ${encoder} / ${llm_pool} resolve in the run's config.
        from router_lab.config_schema import RunDataConfig, check_config

        check_config(cfg, RunDataConfig)
    trusted = str(data.get("_target_")) if data is not None else None
    return build_datamodule(cfg.data, where, trusted_target=trusted)
