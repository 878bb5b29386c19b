"""Use a trained router from Python: load it, route queries or conversations.

    from router_lab.api import Router
    router = Router.load("outputs/export/my_router")     # an export dir (python -m router_lab.export)
    router = Router.load("outputs/train/runs/<run>")     # or a run dir / a .ckpt inside one
    d = router.route("What is the integral of x^2?")
    d.llm, d.confidence, d.scores, d.fallback, d.cost
    router.route([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                  {"role": "user", "content": "now prove Fermat's little theorem"}])
    router.route_batch(["q1", "q2"])

Works for every router family: the LightningModule's ``decide(batch)`` makes the decision
(see docs/architecture.md); this module only turns text into the batch the router expects
(token ids in fine-tune mode, a query embedding from the exported backbone in frozen mode)
and applies the serving policy on top of the decision, in this order:

1. ``cost_lambda`` (from ``router_lab.calibrate``): choose argmax over LLMs of
   ``cost_lambda * utility - cost`` instead of the router's own choice;
2. ``categories``: a category -> LLM override (classifier routers);
3. ``confidence_threshold`` / ``fallback_llm``: below the threshold, take the fallback LLM.

An export dir holds ``router.yaml`` (class, hyper-parameters, pool, policy, route map),
``model.safetensors`` (the LightningModule's state dict) and ``encoder/`` (backbone and
tokenizer); loading it needs neither Hydra nor the training config tree.
"""
from __future__ import annotations

import importlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
import yaml

from router_lab.data.records import render_conversation
from router_lab.encoders import EncoderSpec, QueryEncoder, load_tokenizer
from router_lab.errors import UserError

log = logging.getLogger("router_lab.api")

EXPORT_FORMAT = "router_lab.export/1"
ROUTER_YAML = "router.yaml"
WEIGHTS = "model.safetensors"
ENCODER_DIR = "encoder"
POLICY_KEYS = ("confidence_threshold", "fallback_llm", "cost_lambda", "categories")
QUANTIZE = ("int8",)

Query = str | Sequence[Mapping[str, Any]]


@dataclass
class RoutingDecision:
    """One routing decision. ``scores`` are the router's per-LLM utilities (what it
    ranks LLMs by: probabilities, quality estimates, ...); ``cost`` is the pool's cost of
    the chosen LLM (None when the pool has no costs)."""

    llm: str
    confidence: float
    scores: dict[str, float]
    fallback: bool
    cost: float | None = None
    category: str | None = None
    truncated: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Policy:
    """Serving policy applied on top of the router's decision (module docstring)."""

    confidence_threshold: float | None = None
    fallback_llm: str | None = None
    cost_lambda: float | None = None
    categories: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, where: str) -> "Policy":
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(POLICY_KEYS))
        if unknown:
            raise UserError(f"{where}: unknown policy key(s) {unknown}; expected some of {list(POLICY_KEYS)}")
        cfg["categories"] = dict(cfg.get("categories") or {})
        return cls(**cfg)

    def merged(self, other: "Policy") -> "Policy":
        """``other``'s settings where it has them, else ours."""
        return Policy(
            confidence_threshold=other.confidence_threshold if other.confidence_threshold is not None
            else self.confidence_threshold,
            fallback_llm=other.fallback_llm or self.fallback_llm,
            cost_lambda=other.cost_lambda if other.cost_lambda is not None else self.cost_lambda,
            categories={**self.categories, **other.categories},
        )

    def to_config(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


def import_class(path: str):
    """``package.module.Class`` -> the class (no Hydra)."""
    module, _, name = str(path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(f"router class {path!r} cannot be imported ({e}); expected a router_lab model class") from None
    if not callable(getattr(cls, "decide", None)):
        raise UserError(f"router class {path!r} has no decide(batch); expected a router LightningModule")
    return cls


def load_route_map(path: str | Path | None) -> dict:
    """A route map YAML (``conf/route_map/example.yaml``): ``endpoints`` (LLM -> {model,
    base_url, api_key_env}) and an optional ``policy``."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise UserError(f"route_map={p}: no such file; expected a YAML route map (see conf/route_map/example.yaml)")
    try:
        cfg = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"route_map={p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        raise UserError(f"route_map={p}: expected a mapping with 'endpoints' and optional 'policy'")
    unknown = sorted(set(cfg) - {"endpoints", "policy"})
    if unknown:
        raise UserError(f"route_map={p}: unknown key(s) {unknown}; expected 'endpoints' and 'policy'")
    endpoints = cfg.get("endpoints") or {}
    for llm, ep in endpoints.items():
        if not isinstance(ep, dict) or not ep.get("base_url"):
            raise UserError(f"route_map={p}: endpoints.{llm} has no base_url; expected {{model, base_url, api_key_env}}")
        bad = sorted(set(ep) - {"model", "base_url", "api_key_env"})
        if bad:
            raise UserError(f"route_map={p}: endpoints.{llm} has unknown key(s) {bad}; expected model, base_url, api_key_env")
    Policy.from_config(cfg.get("policy"), f"route_map={p}")
    return {"endpoints": {str(k): dict(v) for k, v in endpoints.items()}, "policy": dict(cfg.get("policy") or {})}


# ------------------------------------------------------------------ loading

def _run_config(path: Path) -> dict:
    for d in [path, *path.parents][:4]:
        f = d / ".hydra" / "config.yaml"
        if f.is_file():
            return yaml.safe_load(f.read_text())
    raise UserError(f"{path}: no .hydra/config.yaml in it or above it; expected an export dir, "
                    "a run dir or a checkpoint inside one")


def _load_export(root: Path):
    for name in (ROUTER_YAML, WEIGHTS, ENCODER_DIR):
        if not (root / name).exists():
            raise UserError(f"{root}: missing {name}; expected an export dir written by python -m router_lab.export "
                            f"({ROUTER_YAML}, {WEIGHTS}, {ENCODER_DIR}/)")
    meta = yaml.safe_load((root / ROUTER_YAML).read_text()) or {}
    for key in ("_target_", "hparams"):
        if key not in meta:
            raise UserError(f"{root / ROUTER_YAML}: no {key!r}; expected a file written by python -m router_lab.export")
    hp = dict(meta["hparams"])
    enc = dict(hp["encoder"])
    enc["pretrained"] = str((root / enc.get("pretrained", ENCODER_DIR)).resolve())
    hp["encoder"] = enc
    cls = import_class(meta["_target_"])
    model = cls(**hp)
    from safetensors.torch import load_file

    state = load_file(str(root / WEIGHTS))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{root / WEIGHTS}: does not fit {meta['_target_']} (missing {list(missing)[:3]}, "
                        f"unexpected {list(unexpected)[:3]}); expected the weights exported with this router.yaml")
    return model, meta


def _load_checkpoint(path: Path):
    ckpt = path
    if path.is_dir():
        ckpt = path / "checkpoints" / "best.ckpt"
        if not ckpt.is_file():
            cands = sorted((path / "checkpoints").glob("*.ckpt")) if (path / "checkpoints").is_dir() else []
            if not cands:
                raise UserError(f"{path}: missing checkpoints/best.ckpt; expected a router_lab run dir")
            ckpt = cands[-1]
    cfg = _run_config(ckpt.parent)
    target = ((cfg or {}).get("model") or {}).get("_target_")
    if not target:
        raise UserError(f"{ckpt}: the run's .hydra/config.yaml has no model._target_")
    cls = import_class(target)
    model = cls.load_from_checkpoint(str(ckpt), map_location="cpu", weights_only=True)
    return model, {"_target_": target, "source": str(ckpt)}


class Router:
    """A trained router ready to route text (see the module docstring)."""

    def __init__(self, model, meta: Mapping[str, Any] | None = None, route_map: Mapping[str, Any] | None = None,
                 device: str = "cpu", quantize: str | None = None, micro_batch: int = 16, runtime: str = "torch",
                 source_dir: str | Path | None = None):
        meta = dict(meta or {})
        if micro_batch < 1:
            raise UserError(f"micro_batch={micro_batch}; expected a positive number of queries per forward pass")
        self.micro_batch = int(micro_batch)
        self.model = model.eval().to(device)
        self.device = device
        self.meta = meta
        hp = model.hparams
        info = dict(hp["data_info"])
        self.target = meta.get("_target_") or f"{type(model).__module__}.{type(model).__name__}"
        self.llm_names: list[str] = list(info["llm_names"])
        costs = info.get("llm_costs") or []
        self.llm_costs: list[float] | None = [float(c) for c in costs] if costs and any(costs) else None
        self.categories: list[str] = list(getattr(model, "categories", None) or info.get("categories") or [])
        self.spec = EncoderSpec.from_config(hp["encoder"])
        self.tokenizer = load_tokenizer(self.spec)
        # Frozen routers were trained on cached embeddings and hold only their head: embed
        # with the backbone they were trained with.
        own = getattr(model, "encoder", None)
        self.query_encoder: QueryEncoder | None = None
        if own is None:
            self.query_encoder = QueryEncoder(self.spec).eval().to(device)
        self.route_map = dict(route_map or meta.get("route_map") or {})
        self.policy = Policy.from_config(meta.get("policy"), "router.yaml policy")
        if self.route_map.get("policy"):
            self.policy = self.policy.merged(Policy.from_config(self.route_map["policy"], "route_map policy"))
        self._check_policy()
        self._warned_truncation = False
        self.quantize = quantize
        from router_lab.onnx_runtime import RUNTIMES

        if runtime not in RUNTIMES:
            raise UserError(f"runtime={runtime!r}; expected one of {list(RUNTIMES)}")
        self.runtime = runtime
        if quantize is not None and quantize not in QUANTIZE:
            raise UserError(f"quantize={quantize!r}; expected one of {list(QUANTIZE)} (or none)")
        if (quantize is not None or runtime == "onnx") and device != "cpu":
            what = "runtime=onnx" if runtime == "onnx" else f"quantize={quantize}"
            raise UserError(f"{what} runs on CPU only; got device={device!r}")
        #: (input_ids, attention_mask) -> query embeddings: the torch encoder or its ONNX session
        self.embed = self.encoder
        if runtime == "onnx":
            from router_lab.onnx_runtime import load_onnx_encoder

            # The encoder in ONNX Runtime (router_lab.onnx_runtime); the head stays in torch.
            self.embed = load_onnx_encoder(self.encoder, Path(source_dir) if source_dir else None, quantize)
        elif quantize is not None:
            self._quantize()

    @property
    def encoder(self) -> torch.nn.Module:
        """The torch encoder (backbone + pooling): the router's own (fine-tuned), or for a
        frozen router the backbone it was trained with."""
        return self.query_encoder if self.query_encoder is not None else self.model.encoder

    def _quantize(self) -> None:
        """int8 dynamic quantisation of the encoder's linear layers (weights int8, activations
        quantised per batch at run time): about 2x faster on CPU, at a small cost in agreement
        with the float router (benchmarks/route_latency.py measures both)."""
        import warnings

        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():  # torch points eager-mode quantisation users to torchao
            warnings.simplefilter("ignore")
            quantize_dynamic(self.encoder, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

    # -------------------------------------------------------------- construction
    @classmethod
    def load(cls, path: str | Path, route_map: str | Path | Mapping | None = None, device: str = "cpu",
             quantize: str | None = None, micro_batch: int = 16, runtime: str = "torch") -> "Router":
        """An export dir, a run dir, or a ``.ckpt`` inside a run dir. ``route_map``: a YAML
        path or mapping whose endpoints/policy override the exported ones. ``quantize="int8"``:
        int8 dynamic quantisation of the encoder (CPU). ``micro_batch``: queries per forward
        pass inside ``route_batch`` (queries are grouped by length, so little is padded).
        ``runtime="onnx"``: the encoder runs in ONNX Runtime (CPU; with ``quantize="int8"``
        ONNX Runtime's int8 quantisation), see ``router_lab.onnx_runtime``."""
        p = Path(path)
        if not p.exists():
            raise UserError(f"router={p}: no such file or directory; expected an export dir, a run dir or a .ckpt")
        if p.is_dir() and ((p / ROUTER_YAML).exists() or not (p / ".hydra").exists()):
            model, meta = _load_export(p)
        else:
            model, meta = _load_checkpoint(p)
        rm = load_route_map(route_map) if isinstance(route_map, (str, Path)) else route_map
        source = p if p.is_dir() and (p / ROUTER_YAML).exists() else None
        return cls(model, meta, rm, device=device, quantize=quantize, micro_batch=micro_batch, runtime=runtime,
                   source_dir=source)

    def _check_policy(self) -> None:
        eps = self.route_map.get("endpoints") or {}
        unknown = [l for l in eps if l not in self.llm_names] if isinstance(eps, Mapping) else []
        if unknown:
            raise UserError(f"route map endpoints: unknown LLM(s) {unknown}; the router's pool is {self.llm_names}")
        pol = self.policy
        for what, name in [("fallback_llm", pol.fallback_llm), *[(f"categories.{c}", l)
                                                                  for c, l in pol.categories.items()]]:
            if name is not None and name not in self.llm_names:
                raise UserError(f"policy {what}: unknown LLM {name!r}; the pool is {self.llm_names}")
        for c in pol.categories:
            if c not in self.categories:
                raise UserError(f"policy categories: unknown category {c!r}; the router's categories are {self.categories}")
        if pol.confidence_threshold is not None and pol.fallback_llm is None:
            raise UserError("policy confidence_threshold is set but fallback_llm is not; expected both")
        if pol.cost_lambda is not None and self.llm_costs is None:
            raise UserError("policy cost_lambda is set but the router's pool has no costs")

    # -------------------------------------------------------------- routing
    @staticmethod
    def text_of(query: Query) -> str:
        """The text the router encodes: a query, or a conversation rendered as in training."""
        if isinstance(query, str):
            text = query
        elif isinstance(query, Sequence) and all(isinstance(t, Mapping) for t in query):
            turns = []
            for i, t in enumerate(query):
                try:
                    turns.append({"role": t.get("role", "user"), "content": _content_text(t.get("content"))})
                except UserError as e:
                    raise UserError(f"messages[{i}].{e}") from None
            text = render_conversation(turns) if any(t["content"].strip() for t in turns) else ""
        else:
            raise UserError(f"cannot route a {type(query).__name__}; expected a string or a list of "
                            "{role, content} turns")
        if not text.strip():
            raise UserError("empty query; expected non-empty text (or a conversation with some content)")
        return text

    def route(self, query: Query) -> RoutingDecision:
        return self.route_batch([query])[0]

    def route_batch(self, queries: Sequence[Query]) -> list[RoutingDecision]:
        if not len(queries):
            return []
        texts = [self.text_of(q) for q in queries]
        d, truncated = self.decide_texts(texts)
        return self._decisions(d, truncated)

    @torch.inference_mode()
    def decide_texts(self, texts: Sequence[str]) -> tuple[dict[str, torch.Tensor], list[bool]]:
        """The router's raw ``decide`` output for texts (before the serving policy), and
        which texts were truncated to the encoder's max length. Texts are tokenised once,
        sorted by length and run ``micro_batch`` at a time, so a batch of mixed lengths is
        not padded to its longest member; the output is in the input's order."""
        ids, truncated = self._tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        parts: list[dict[str, torch.Tensor]] = []
        for s in range(0, len(order), self.micro_batch):
            chunk = [ids[i] for i in order[s:s + self.micro_batch]]
            batch = self.tokenizer.pad({"input_ids": chunk}, return_tensors="pt")
            ids_t, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            parts.append(self.model.decide({"embedding": self.embed(ids_t, mask).to(self.device)}))
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        inverse = inverse.to(self.device)
        merged = {k: torch.cat([p[k] for p in parts])[inverse] for k in parts[0]}
        return merged, truncated

    def _tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids of each text (truncated to the encoder's max length, on the configured
        side), and which texts were truncated; warns once per router."""
        max_len = self.spec.max_length
        # Cut each text to the part the encoder will read before tokenising it: a megabyte
        # query costs what a normal one does (same ids, see window_text).
        windows = [self.window_text(t) for t in texts]
        ids = self.tokenizer([w for w, _ in windows], truncation=True, max_length=max_len)["input_ids"]
        truncated = [cut for _, cut in windows]
        for i, row in enumerate(ids):
            # Only texts that filled the window can have been cut; check those exactly.
            if len(row) >= max_len and not truncated[i]:
                truncated[i] = len(self.tokenizer(windows[i][0], truncation=False)["input_ids"]) > max_len
        if any(truncated) and not self._warned_truncation:
            self._warned_truncation = True
            log.warning("query longer than the encoder's max_length=%d tokens: truncated (truncation_side=%s); "
                        "said once per router", max_len, self.spec.truncation_side)
        return ids, truncated

    #: First guess of the characters that fill the encoder's window: max_length times this.
    WINDOW_CHARS_PER_TOKEN = 8

    def window_text(self, text: str) -> tuple[str, bool]:
        """``text`` cut to a whole-word prefix (suffix for ``truncation_side=left``) that still
        holds more than ``max_length`` tokens, and whether it was cut. Tokenisers split on
        whitespace before anything else, so the window's first ``max_length`` ids are the
        full text's: only the cost changes. The window grows until it is full."""
        max_len = self.spec.max_length
        budget = max_len * self.WINDOW_CHARS_PER_TOKEN
        right = self.spec.truncation_side != "left"
        while 2 * budget < len(text):
            piece = text[:budget] if right else text[-budget:]
            # Whole words only: drop the (possibly split) word at the cut.
            ws = [i for i in (piece.rfind(" "), piece.rfind("\n"), piece.rfind("\t"))] if right else \
                 [i for i in (piece.find(" "), piece.find("\n"), piece.find("\t")) if i >= 0]
            at = max(ws) if right else (min(ws) if ws else -1)
            if at > 0:
                piece = piece[:at] if right else piece[at + 1:]
            if len(self.tokenizer(piece, truncation=False, add_special_tokens=False)["input_ids"]) > max_len:
                return piece, True
            budget *= 4
        return text, False

    def apply_policy(self, d: Mapping[str, torch.Tensor], policy: Policy | None = None) -> dict[str, torch.Tensor]:
        """The serving policy (module docstring) on a raw decision: new llm / fallback."""
        pol = policy or self.policy
        util = d["utilities"].float()
        llm = d["llm"].clone()
        fallback = d["fallback"].clone().bool()
        conf = d["confidence"].float()
        if pol.cost_lambda is not None and self.llm_costs is not None:
            lam = float(pol.cost_lambda)
            if math.isinf(lam):
                llm = util.argmax(-1)
            else:
                costs = torch.tensor(self.llm_costs, device=util.device)
                llm = (lam * util - costs).argmax(-1)
            fallback = torch.zeros_like(fallback)
        if pol.categories and "category" in d:
            for c, name in pol.categories.items():
                hit = d["category"] == self.categories.index(c)
                llm = torch.where(hit & ~fallback, torch.full_like(llm, self.llm_names.index(name)), llm)
        if pol.confidence_threshold is not None:
            low = conf < float(pol.confidence_threshold)
            llm = torch.where(low, torch.full_like(llm, self.llm_names.index(pol.fallback_llm)), llm)
            fallback = fallback | low
        return {**d, "llm": llm, "fallback": fallback}

    def _decisions(self, d: Mapping[str, torch.Tensor], truncated: list[bool]) -> list[RoutingDecision]:
        d = self.apply_policy(d)
        util = d["utilities"].float().cpu().tolist()
        llm = d["llm"].cpu().tolist()
        conf = d["confidence"].float().cpu().tolist()
        fb = d["fallback"].cpu().tolist()
        cat = d["category"].cpu().tolist() if "category" in d and self.categories else None
        out = []
        for i in range(len(llm)):
            out.append(RoutingDecision(
                llm=self.llm_names[llm[i]], confidence=float(conf[i]),
                scores={n: float(u) for n, u in zip(self.llm_names, util[i])}, fallback=bool(fb[i]),
                cost=self.llm_costs[llm[i]] if self.llm_costs else None,
                category=self.categories[cat[i]] if cat is not None else None, truncated=truncated[i]))
        return out

    # -------------------------------------------------------------- endpoints
    def endpoint(self, llm: str) -> dict | None:
        """The route map's endpoint of an LLM ({model, base_url, api_key_env}), or None."""
        return (self.route_map.get("endpoints") or {}).get(llm)

    def describe(self) -> dict:
        return {"class": self.target, "llms": self.llm_names, "costs": self.llm_costs,
                "encoder": self.spec.name, "pooling": self.spec.pooling, "max_length": self.spec.max_length,
                "policy": self.policy.to_config(), "frozen": self.query_encoder is not None,
                "quantize": self.quantize, "runtime": self.runtime}


def _content_text(content: Any) -> str:
    """OpenAI message content: a string, or a list of parts whose text parts count."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, p in enumerate(content):
            if isinstance(p, Mapping) and p.get("type") == "text":
                t = p.get("text", "")
                if not isinstance(t, str):
                    raise UserError(f"content[{j}].text is {json.dumps(t)[:40]} (a {type(t).__name__}); "
                                    "expected a string")
                texts.append(t)
        return "\n".join(texts)
    return str(content)


def iter_chunks(items: Iterable, size: int) -> Iterable[list]:
    chunk: list = []
    for it in items:
        chunk.append(it)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
