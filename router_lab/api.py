"""Use a trained router from Python: load it, route queries or conversations.

    from router_lab.api import Router
    router = Router.load("outputs/export/my_router")     # an export dir (python -m router_lab.export)
    router = Router.load("outputs/train/runs/<run>")     # or a run dir / a .ckpt inside one
    d = router.route("What is the integral of x^2?")
    d.llm, d.confidence, d.scores, d.fallback, d.cost, d.category
    router.route([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                  {"role": "user", "content": "now prove Fermat's little theorem"}])
    router.route_batch(["q1", "q2"])

Works for every router family: the LightningModule's ``decide(batch)`` makes the decision
(see docs/architecture.md); this module only turns text into the batch the router expects
(token ids in fine-tune mode, a query embedding from the exported backbone in frozen mode)
and applies the serving policy on top of the decision, in this order:

1. ``cost_lambda`` (from ``router_lab.calibrate``): choose argmax over LLMs of
   ``cost_lambda * utility - cost`` instead of the router's own choice;
2. ``category_map``: a category -> LLM override (classifier routers);
3. ``confidence_threshold`` / ``fallback_llm``: below the threshold, take the fallback LLM.

A category ("label") router -- a classifier trained on label data such as CLINC150 intents,
whose training pool may be empty -- routes by category instead (:func:`label_decision`):
its LLM is ``category_map[category]``, else ``default_llm``; below ``confidence_threshold``
the query is out of scope (``fallback=True``) and goes to ``fallback_llm`` (default:
``default_llm``); with no LLM configured the decision's ``llm`` is None and the category and
confidence are the answer. The LLMs the policy names join the router's pool.

An export dir holds ``router.yaml`` (class, hyper-parameters, pool, policy, route map),
``model.safetensors`` (the LightningModule's state dict) and ``encoder/`` (backbone and
tokenizer); loading it needs neither Hydra nor the training config tree. Loading goes through
``router_lab.runs`` (registered families only, weights-only, files read as data); an export's
own route map endpoints are used only with ``trust_export=True`` (README "Security model").
"""
from __future__ import annotations

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
from router_lab.runs import ENCODER_DIR, EXPORT_FORMAT, EXPORT_MARKER, ROUTER_YAML, WEIGHTS, load_router_model  # noqa: F401
from router_lab.policy import apply_fallback, choose_llm, label_decision

log = logging.getLogger("router_lab.api")

POLICY_KEYS = ("confidence_threshold", "fallback_llm", "cost_lambda", "category_map", "default_llm")
QUANTIZE = ("int8",)

Query = str | Sequence[Mapping[str, Any]]


@dataclass
class RoutingDecision:
    """One routing decision. ``scores`` are the router's per-LLM utilities (what it
    ranks LLMs by: probabilities, quality estimates, ...); ``cost`` is the pool's cost of
    the chosen LLM (None when the pool has no costs). Category routers also give the
    ``category`` (their top one, also when falling back); ``fallback`` is then the
    out-of-scope decision, and ``llm`` is None when no LLM is configured for the query."""

    llm: str | None
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
    category_map: dict[str, str] = field(default_factory=dict)
    default_llm: str | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None, where: str) -> "Policy":
        cfg = dict(cfg or {})
        if "categories" in cfg and "category_map" not in cfg:  # the key's earlier name
            cfg["category_map"] = cfg.pop("categories")
        unknown = sorted(set(cfg) - set(POLICY_KEYS))
        if unknown:
            raise UserError(f"{where}: unknown policy key(s) {unknown}; expected some of {list(POLICY_KEYS)}")
        cmap = cfg.get("category_map") or {}
        if not isinstance(cmap, Mapping):
            raise UserError(f"{where}: category_map is {type(cmap).__name__}; expected {{category: llm}}")
        cfg["category_map"] = {str(k): str(v) for k, v in cmap.items()}
        for key in ("confidence_threshold", "cost_lambda"):
            v = cfg.get(key)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0 \
                    or (key == "confidence_threshold" and math.isinf(v)):
                raise UserError(f"{where}: policy {key} is {v!r}; expected a number >= 0"
                                + (" (a confidence, usually in [0, 1])" if key == "confidence_threshold"
                                   else " (willingness to pay, cost per unit of quality; .inf: quality only)"))
            cfg[key] = float(v)
        for key in ("fallback_llm", "default_llm"):
            v = cfg.get(key)
            if v is not None and not isinstance(v, str):
                raise UserError(f"{where}: policy {key} is {v!r}; expected an LLM name")
        return cls(**cfg)

    def merged(self, other: "Policy") -> "Policy":
        """``other``'s settings where it has them, else ours."""
        return Policy(
            confidence_threshold=other.confidence_threshold if other.confidence_threshold is not None
            else self.confidence_threshold,
            fallback_llm=other.fallback_llm or self.fallback_llm,
            cost_lambda=other.cost_lambda if other.cost_lambda is not None else self.cost_lambda,
            category_map={**self.category_map, **other.category_map},
            default_llm=other.default_llm or self.default_llm,
        )

    def llms(self) -> list[str]:
        """The LLMs the policy names (category_map, default_llm, fallback_llm), in order."""
        names = [*self.category_map.values(), self.default_llm, self.fallback_llm]
        return list(dict.fromkeys(n for n in names if n))

    def to_config(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


def load_route_map(path: str | Path | None) -> dict:
    """A route map YAML (``conf/route_maps/example.yaml``): ``endpoints`` (LLM -> {model,
    base_url, api_key_env}) and an optional ``policy``."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise UserError(f"route_map={p}: no such file; expected a YAML route map (see conf/route_maps/example.yaml)")
    try:
        cfg = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"route_map={p}: not valid YAML ({str(e).splitlines()[0]})") from None
    return check_route_map(cfg, f"route_map={p}")


def check_route_map(cfg: Any, where: str) -> dict:
    """A route map mapping checked: known keys, every endpoint with a base_url."""
    if not isinstance(cfg, Mapping):
        raise UserError(f"{where}: expected a mapping with 'endpoints' and optional 'policy'")
    unknown = sorted(set(cfg) - {"endpoints", "policy"})
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; expected 'endpoints' and 'policy'")
    endpoints = cfg.get("endpoints") or {}
    if not isinstance(endpoints, Mapping):
        raise UserError(f"{where}: endpoints is a {type(endpoints).__name__}; expected LLM -> {{model, base_url, api_key_env}}")
    for llm, ep in endpoints.items():
        if not isinstance(ep, Mapping) or not ep.get("base_url"):
            raise UserError(f"{where}: endpoints.{llm} has no base_url; expected {{model, base_url, api_key_env}}")
        bad = sorted(set(ep) - {"model", "base_url", "api_key_env"})
        if bad:
            raise UserError(f"{where}: endpoints.{llm} has unknown key(s) {bad}; expected model, base_url, api_key_env")
    Policy.from_config(cfg.get("policy"), where)
    return {"endpoints": {str(k): dict(v) for k, v in endpoints.items()}, "policy": dict(cfg.get("policy") or {})}


# ------------------------------------------------------------------ the router

def _final_question(text: str) -> str:
    from router_lab.data.loaders.routerbench import final_question

    return final_question(text)


#: Query preparations a router may name (``data_info.query_prep``, set by the data it was
#: trained on): a fixed set, so an export dir cannot choose code to run.
QUERY_PREP = {"final_question": _final_question}


class Router:
    """A trained router ready to route text (see the module docstring)."""

    def __init__(self, model, meta: Mapping[str, Any] | None = None, route_map: Mapping[str, Any] | None = None,
                 device: str = "cpu", quantize: str | None = None, micro_batch: int = 16, runtime: str = "torch",
                 source_dir: str | Path | None = None, trust_export: bool = False):
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
        #: the LLMs the router was trained over (empty for a category router on label-only data)
        self.model_llm_names: list[str] = list(info["llm_names"])
        self.llm_names: list[str] = list(self.model_llm_names)
        costs = info.get("llm_costs") or []
        self.llm_costs: list[float] | None = [float(c) for c in costs] if costs and any(costs) else None
        self.categories: list[str] = list(getattr(model, "categories", None) or info.get("categories") or [])
        #: a category router trained on labels (not on each query's best LLM): routes by category_map
        self.label_router = info.get("label_kind") == "label" and bool(self.categories) and \
            hasattr(model, "category_llm")
        prep = info.get("query_prep")
        if prep is not None and prep not in QUERY_PREP:
            raise UserError(f"data_info.query_prep={prep!r}; expected one of {sorted(QUERY_PREP)} or none")
        #: what training did to every query before encoding it, done here to every routed text
        self.query_prep: str | None = prep
        self.spec = EncoderSpec.from_config(hp["encoder"])
        self.tokenizer = load_tokenizer(self.spec)
        # Frozen routers were trained on cached embeddings and hold only their head: embed
        # with the backbone they were trained with.
        own = getattr(model, "encoder", None)
        self.query_encoder: QueryEncoder | None = None
        if own is None:
            self.query_encoder = QueryEncoder(self.spec).eval().to(device)
        # An export's route map is data: its policy applies, but its endpoints (URLs and the
        # environment variable sent as the key) only with trust_export=True; else they are a
        # suggestion (``suggested_route_map``) and route_map= must name the endpoints.
        exported = meta.get("route_map") or {}
        if not isinstance(exported, Mapping) or not isinstance(exported.get("endpoints") or {}, Mapping):
            raise UserError("router.yaml route_map: expected a mapping with 'endpoints' (LLM -> {model, base_url, "
                            "api_key_env}) and 'policy'")
        self.suggested_route_map: dict = dict(exported)
        if route_map:
            self.route_map = check_route_map(route_map, "route_map")
        elif trust_export:
            self.route_map = check_route_map(exported, "router.yaml route_map")
        else:
            self.route_map = {"policy": dict(exported.get("policy") or {})} if exported.get("policy") else {}
        self.policy = Policy.from_config(meta.get("policy"), "router.yaml policy")
        if self.route_map.get("policy"):
            self.policy = self.policy.merged(Policy.from_config(self.route_map["policy"], "route_map policy"))
        if self.label_router:  # the LLMs its category_map / default / fallback name join the pool
            self.llm_names += [n for n in self.policy.llms() if n not in self.llm_names]
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
             quantize: str | None = None, micro_batch: int = 16, runtime: str = "torch",
             trust_export: bool = False) -> "Router":
        """An export dir, a run dir, or a ``.ckpt`` inside a run dir, loaded as data
        (``router_lab.runs``: registered families only, weights-only). ``route_map``: a YAML
        path or mapping whose endpoints/policy override the exported ones; an export's own
        endpoints (URLs, key variables) are used only with ``trust_export=True``. ``quantize="int8"``:
        int8 dynamic quantisation of the encoder (CPU). ``micro_batch``: queries per forward
        pass inside ``route_batch`` (queries are grouped by length, so little is padded).
        ``runtime="onnx"``: the encoder runs in ONNX Runtime (CPU; with ``quantize="int8"``
        ONNX Runtime's int8 quantisation), see ``router_lab.onnx_runtime``."""
        model, meta, source = load_router_model(path)
        rm = load_route_map(route_map) if isinstance(route_map, (str, Path)) else route_map
        return cls(model, meta, rm, device=device, quantize=quantize, micro_batch=micro_batch, runtime=runtime,
                   source_dir=source, trust_export=trust_export)

    def _check_policy(self) -> None:
        eps = self.route_map.get("endpoints") or {}
        unknown = [l for l in eps if l not in self.llm_names] if isinstance(eps, Mapping) else []
        if unknown:
            raise UserError(f"route map endpoints: unknown LLM(s) {unknown}; the router's pool is {self.llm_names}")
        pol = self.policy
        for what, name in [("fallback_llm", pol.fallback_llm), *[(f"category_map.{c}", l)
                                                                  for c, l in pol.category_map.items()]]:
            if name is not None and name not in self.llm_names:
                raise UserError(f"policy {what}: unknown LLM {name!r}; the pool is {self.llm_names}")
        for c in pol.category_map:
            if c not in self.categories:
                shown = self.categories if len(self.categories) <= 12 else [*self.categories[:12], "..."]
                raise UserError(f"policy category_map: unknown category {c!r}; the router's categories are {shown}")
        if self.label_router:
            if pol.cost_lambda is not None:
                raise UserError("policy cost_lambda: a category router routes by category_map, not by a cost "
                                "trade-off; expected category_map / default_llm / confidence_threshold")
            return
        if pol.default_llm is not None:
            raise UserError(f"policy default_llm: only for category routers trained on labels; {self.target} "
                            "scores LLMs (use fallback_llm with confidence_threshold)")
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
        which texts were truncated to the encoder's max length. Each text is first prepared
        as the training queries were (``query_prep``: a RouterBench router trained on the
        final question of k-shot prompts reads only that question of a k-shot prompt). Texts are tokenised once,
        sorted by length and run ``micro_batch`` at a time, so a batch of mixed lengths is
        not padded to its longest member; the output is in the input's order."""
        if self.query_prep is not None:
            texts = [QUERY_PREP[self.query_prep](t) for t in texts]
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
        if self.label_router and "probs" in d:
            return {**d, **self._label_policy(d["probs"], pol)}
        util = d["utilities"].float()
        llm = d["llm"].clone()
        fallback = d["fallback"].clone().bool()
        conf = d["confidence"].float()
        if pol.cost_lambda is not None and self.llm_costs is not None:
            llm = choose_llm(util, self.llm_costs, float(pol.cost_lambda))
            fallback = torch.zeros_like(fallback)
        if pol.category_map and "category" in d:
            for c, name in pol.category_map.items():
                hit = d["category"] == self.categories.index(c)
                llm = torch.where(hit & ~fallback, torch.full_like(llm, self.llm_names.index(name)), llm)
        if pol.confidence_threshold is not None:
            llm, fallback = apply_fallback(llm, conf, pol.confidence_threshold, self.llm_names.index(pol.fallback_llm),
                                           fallback)
        return {**d, "llm": llm, "fallback": fallback}

    def _label_policy(self, probs: torch.Tensor, pol: Policy) -> dict[str, torch.Tensor]:
        """A category router's policy: each category's LLM is ``category_map``'s, else the
        training-time ``category_to_llm``'s, else ``default_llm``, else the router's own
        fallback; below the threshold (the policy's, else the router's) the query is out of
        scope and goes to ``fallback_llm`` (else ``default_llm``, else the router's own)."""
        model = self.model
        own_fallback = getattr(model, "fallback_index", -1)
        own_fallback = self.model_llm_names[own_fallback] if 0 <= own_fallback < len(self.model_llm_names) else None
        trained_map = dict(model.hparams.get("category_to_llm") or {})
        default = pol.default_llm or own_fallback
        index = {n: i for i, n in enumerate(self.llm_names)}
        cat_llm = [index.get(pol.category_map.get(c) or trained_map.get(c) or default, -1) for c in self.categories]
        fallback = pol.fallback_llm or pol.default_llm or own_fallback
        threshold = pol.confidence_threshold if pol.confidence_threshold is not None else \
            getattr(model, "confidence_threshold", None)
        return label_decision(probs, torch.tensor(cat_llm, dtype=torch.long), threshold, index.get(fallback, -1),
                              len(self.llm_names))

    def _decisions(self, d: Mapping[str, torch.Tensor], truncated: list[bool]) -> list[RoutingDecision]:
        d = self.apply_policy(d)
        util = d["utilities"].float().cpu().tolist()
        llm = d["llm"].cpu().tolist()
        conf = d["confidence"].float().cpu().tolist()
        fb = d["fallback"].cpu().tolist()
        cat = d["category"].cpu().tolist() if "category" in d and self.categories else None
        out = []
        for i in range(len(llm)):
            name = self.llm_names[llm[i]] if llm[i] >= 0 else None
            out.append(RoutingDecision(
                llm=name, confidence=float(conf[i]),
                scores={n: float(u) for n, u in zip(self.llm_names, util[i])}, fallback=bool(fb[i]),
                cost=self.cost_of(name), category=self.categories[cat[i]] if cat is not None else None,
                truncated=truncated[i]))
        return out

    def cost_of(self, llm: str | None) -> float | None:
        """The pool's cost of an LLM; None without costs (or for an LLM only the policy names)."""
        i = self.llm_names.index(llm) if llm in self.llm_names else -1
        return self.llm_costs[i] if self.llm_costs and 0 <= i < len(self.llm_costs) else None

    # -------------------------------------------------------------- endpoints
    def endpoint(self, llm: str) -> dict | None:
        """The route map's endpoint of an LLM ({model, base_url, api_key_env}), or None."""
        return (self.route_map.get("endpoints") or {}).get(llm)

    def describe(self) -> dict:
        return {"class": self.target, "llms": self.llm_names, "costs": self.llm_costs,
                "encoder": self.spec.name, "pooling": self.spec.pooling, "max_length": self.spec.max_length,
                "policy": self.policy.to_config(), "frozen": self.query_encoder is not None,
                "label_router": self.label_router, "categories": len(self.categories),
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
