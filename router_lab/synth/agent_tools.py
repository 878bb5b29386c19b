"""Agent tool-call recipe (the "semantic router" data factory).

    python -m router_lab.synth synth=agent_tools synth.n_items=300

One work item = one (domain, persona, query style, intent) drawn from the config's
diversity axes and intent mix; the LLM writes a user query and the agent's next step as
an :class:`~router_lab.synth.schemas.AgentExample` (a discriminated union on ``status``).
Three validation layers, each rejection recorded with its reason:

1. structural: the schema (instructor re-asks, then the item is rejected);
2. quality: no parroting of the query, a thought of at least ``min_thought_words`` words,
   nothing generic;
3. domain safety: no unsafe code (``rm -rf``, ``os.system``, ``DROP TABLE``, ...), file
   operations only on explicit paths the user named.

Outputs serialise with ``exclude_none`` (no "null tax"), split train/test stratified by
label, and render through a ChatML or Llama-3 chat template into training text.
"""
from __future__ import annotations

import dataclasses
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Mapping

from router_lab.data.records import RoutingRecord, stable_id
from router_lab.synth.arch_router import _reason, item_rng
from router_lab.synth.backends import InvalidReply, LLMClient, RequestFailed
from router_lab.synth.schemas import AgentExample, CompleteStep, FileManager, RunningStep, SandboxExec, agent_label
from router_lab.synth.scoring import score_query
from router_lab.synth.stage import stage_request

LAYERS = ("structural", "quality", "domain_safety")

UNSAFE_PATTERNS = [
    (re.compile(r"\brm\s+-[a-z]*r[a-z]*f|\brm\s+-[a-z]*f[a-z]*r", re.I), "rm -rf"),
    (re.compile(r"\bos\.system\s*\(|subprocess\.[a-z_]+\([^)]*shell\s*=\s*True", re.I), "shell execution"),
    (re.compile(r"shutil\.rmtree\s*\(", re.I), "recursive delete"),
    (re.compile(r"\bdrop\s+(table|database)\b|\btruncate\s+table\b", re.I), "destructive SQL"),
    (re.compile(r"chmod\s+(-R\s+)?777", re.I), "chmod 777"),
    (re.compile(r"(curl|wget)[^|\n]*\|\s*(ba)?sh", re.I), "pipe to shell"),
    (re.compile(r":\(\)\s*\{\s*:\|:&\s*\};:"), "fork bomb"),
    (re.compile(r"\beval\s*\(\s*input\s*\(|\bexec\s*\(\s*input\s*\(", re.I), "eval of input"),
]
GENERIC = [re.compile(p, re.I) for p in (
    r"^(sure|ok(ay)?|certainly)[.!]?$", r"^i (can|will|would be happy to) help( you)?( with that)?[.!]?$",
    r"^let me help( you)?[.!]?$", r"^i('ll| will) (use|call) (a|the) tool[.!]?$", r"^use the tool[.!]?$",
    r"^(here is|here's) (the|your) answer[.!]?$")]
_WORD = re.compile(r"\w+")
_PATH = re.compile(r"^(\.{0,2}/)?[\w.\-]+(/[\w.\-]+)*\.\w+$|^(\.{0,2}/)?[\w.\-]+(/[\w.\-]+)+/?$")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _overlap(a: str, b: str) -> float:
    wa, wb = set(_words(a)), set(_words(b))
    return len(wa & wb) / max(1, len(wa | wb))


def check_quality(ex: AgentExample, min_thought_words: int = 6, parrot_jaccard: float = 0.8) -> str | None:
    """Layer 2: the reason to reject, or None."""
    r = ex.response
    if isinstance(r, RunningStep):
        if len(_words(r.thought)) < min_thought_words:
            return f"thought has {len(_words(r.thought))} words (< {min_thought_words})"
        if _overlap(r.thought, ex.query) >= parrot_jaccard:
            return "thought parrots the query"
        if any(g.match(r.thought.strip()) for g in GENERIC):
            return "generic thought"
        args = r.tool_use.arguments.model_dump()
        main = str(args.get("query") or args.get("question") or "")
        if main and _normal(main) == _normal(ex.query):
            return "tool argument parrots the query"
    else:
        ans = r.final_answer.strip()
        if any(g.match(ans) for g in GENERIC) or len(_words(ans)) < 4:
            return "generic final answer"
        if _overlap(ans, ex.query) >= parrot_jaccard:
            return "final answer parrots the query"
    return None


def _normal(s: str) -> str:
    return " ".join(_words(s))


def check_domain_safety(ex: AgentExample) -> str | None:
    """Layer 3: the reason to reject, or None."""
    r = ex.response
    texts = [ex.response.final_answer or ""] if isinstance(r, CompleteStep) else []
    if isinstance(r, RunningStep):
        tu = r.tool_use
        if isinstance(tu, SandboxExec):
            texts.append(tu.arguments.code)
        if isinstance(tu, FileManager):
            texts.append(tu.arguments.content or "")
            path = tu.arguments.path.strip()
            if not _PATH.match(path) or any(c in path for c in "*?"):
                return f"file operation without an explicit path ({path!r})"
            if Path(path).name.lower() not in ex.query.lower():
                return f"file operation on a path the user never named ({path!r})"
            if tu.arguments.operation in ("write", "patch") and not tu.arguments.content:
                return f"{tu.arguments.operation} without content"
    for t in texts:
        for pat, what in UNSAFE_PATTERNS:
            if pat.search(t):
                return f"unsafe code: {what}"
    return None


# ---------------------------------------------------------------- chat templates

def format_chat(system: str, user: str, assistant: str, template: str = "chatml") -> str:
    """Training text for one example in a ChatML or Llama-3 chat template."""
    if template == "chatml":
        return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
                f"<|im_start|>assistant\n{assistant}<|im_end|>\n")
    if template == "llama3":
        h = "<|start_header_id|>{}<|end_header_id|>\n\n"
        return ("<|begin_of_text|>" + h.format("system") + system + "<|eot_id|>" + h.format("user") + user
                + "<|eot_id|>" + h.format("assistant") + assistant + "<|eot_id|>")
    raise ValueError(f"synth.format.template is {template!r}; expected chatml or llama3")


def stratified_split(labels: list[str], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Per label, a seeded ``test_fraction`` of indices (at least one when a label has two or more)."""
    by: dict[str, list[int]] = defaultdict(list)
    for i, l in enumerate(labels):
        by[l].append(i)
    train, test = [], []
    rng = random.Random(seed)
    for l in sorted(by):
        idx = by[l][:]
        rng.shuffle(idx)
        n_test = round(len(idx) * test_fraction)
        if len(idx) >= 2 and test_fraction > 0:
            n_test = max(1, min(n_test, len(idx) - 1))
        test += idx[:n_test]
        train += idx[n_test:]
    return sorted(train), sorted(test)


# ---------------------------------------------------------------- the recipe

class AgentToolsRecipe:
    name = "agent_tools"
    output_file = "agent_tools.jsonl"

    def __init__(self, cfg: Mapping[str, Any], client: LLMClient):
        self.cfg = cfg
        self.client = client
        self.seed = int(cfg.get("seed", 0))
        self.stages = cfg["stages"]
        self.prep_rejections: list[dict] = []
        self.prep_events: Counter = Counter()

    async def prepare(self, run_dir=None) -> None:
        ax = self.cfg["axes"]
        for k in ("domains", "personas", "styles"):
            if not ax.get(k):
                from router_lab.synth.backends import SynthConfigError

                raise SynthConfigError(f"synth.axes.{k} is empty; expected a list of strings")
        mix = dict(self.cfg["intent_mix"])
        self._intents, self._weights = list(mix), [float(v) for v in mix.values()]

    def n_items(self) -> int:
        return int(self.cfg["n_items"])

    def check_logged(self, idx: int, row: dict) -> None:
        """Items are independent draws from the config (checked by the run's fingerprint)."""

    async def process(self, idx: int) -> dict:
        rng = item_rng(self.seed, "item", idx)
        ax = self.cfg["axes"]
        ctx = {"domain": rng.choice(list(ax["domains"])), "persona": rng.choice(list(ax["personas"])),
               "style": rng.choice(list(ax["styles"])),
               "intent": rng.choices(self._intents, weights=self._weights, k=1)[0]}
        ctx["intent_description"] = dict(self.cfg.get("intent_descriptions") or {}).get(ctx["intent"], ctx["intent"])
        events: Counter = Counter()
        result = {"item": idx, "status": "rejected", "rejections": [], "outputs": [], "events": events, **{
            k: ctx[k] for k in ("domain", "persona", "style", "intent")}}
        try:
            ex = (await self.client.ask(stage_request("example", self.stages["example"], ctx, rng, AgentExample,
                                                         sample=f"item{idx}"))).obj
        except (InvalidReply, RequestFailed) as e:
            result["rejections"].append({"stage": "example", "layer": "structural", "reason": _reason(e)})
            return result
        q = self.cfg.get("quality") or {}
        for layer, check in (("quality", lambda: check_quality(ex, int(q.get("min_thought_words", 6)),
                                                               float(q.get("parrot_jaccard", 0.8)))),
                             ("domain_safety", lambda: check_domain_safety(ex))):
            why = check()
            if why:
                result["rejections"].append({"stage": "example", "layer": layer, "reason": why,
                                             "example": ex.model_dump(mode="json", exclude_none=True)})
                return result
        label = agent_label(ex)
        rid = stable_id("synth", self.name, self.seed, idx)
        rec = RoutingRecord(id=rid, query=ex.query, task=ctx["domain"], label=label)
        if (self.cfg.get("scoring") or {}).get("enabled"):
            try:
                rec.scores, rec.costs = await score_query(self.client, self.cfg["scoring"], self.stages,
                                                          ex.query, ctx["domain"])
            except (InvalidReply, RequestFailed) as e:
                result["rejections"].append({"stage": "scoring", "layer": "scoring", "reason": _reason(e)})
                return result
        result["status"] = "accepted"
        result["dedup_text"] = ex.query
        result["outputs"].append({
            "branch": "original", "label": label,
            "agent": {"id": rid, "query": ex.query, "response": ex.response.model_dump(mode="json", exclude_none=True),
                      "label": label, **{k: ctx[k] for k in ("domain", "persona", "style", "intent")}},
            "record": dataclasses.asdict(rec)})
        return result

    def finalize(self, kept: list[dict], run_dir) -> dict:
        from router_lab.synth.store import atomic_write_jsonl

        rows = [o["agent"] for r in kept for o in r["outputs"]]
        atomic_write_jsonl(run_dir / self.output_file, rows)
        fmt = self.cfg.get("format") or {}
        train, test = stratified_split([r["label"] for r in rows], float(fmt.get("test_fraction", 0.1)), self.seed)
        system, tmpl = str(fmt.get("system", "")), str(fmt.get("template", "chatml"))

        def text(r: dict) -> dict:
            return {"id": r["id"], "label": r["label"],
                    "text": format_chat(system, r["query"], json.dumps(r["response"], ensure_ascii=False), tmpl)}

        atomic_write_jsonl(run_dir / "formatted_train.jsonl", [text(rows[i]) for i in train])
        atomic_write_jsonl(run_dir / "formatted_test.jsonl", [text(rows[i]) for i in test])
        return {"train": len(train), "test": len(test), "chat_template": tmpl}
