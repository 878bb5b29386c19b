"""Arch-Router recipe: taxonomy -> policies (LLM-1) -> conversations (LLM-2) -> judge (LLM-3)
-> augmentation branches -> Arch-Router records and routing records.

    python -m router_lab.synth synth=arch_router synth.n_items=200

One work item = one conversation for one route: item ``i`` belongs to route
``order[i % n_routes]`` over *all* taxonomy routes (a seeded shuffle), so which route an
item gets never depends on which other policies were generated; an item whose route's
policy could not be generated is rejected (``stage: policy``). The policies are recorded
in ``policies.json`` in the run dir and reused on resume; a run dir whose logged items
do not match its policies (the taxonomy or ``policies.json`` changed) is refused. Below the
judge's threshold a conversation is regenerated (the judge's reasoning goes back into the
prompt) up to ``judge.max_regenerations`` times, then the item is rejected. Accepted items
branch: the original always, and with configured probabilities a paraphrase (an LLM
stage), a noisy copy (typos), an irrelevant copy (last turn off-topic: target ``other``)
and a domain-mixed copy (an earlier exchange from another route).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections import Counter
from typing import Any, Mapping

from router_lab.data.records import RoutingRecord, render_conversation, stable_id
from router_lab.synth import offline
from router_lab.synth.backends import InvalidReply, LLMClient, RequestFailed, SynthConfigError, gather_all
from router_lab.synth.schemas import AlignmentJudgement, Conversation, Paraphrase, RoutePolicy
from router_lab.synth.scoring import score_query
from router_lab.synth.stage import stage_request
from router_lab.synth.taxonomy import load_taxonomy, route_pairs

log = logging.getLogger(__name__)

BRANCHES = ("original", "paraphrased", "noisy", "irrelevant", "domain_mix")


def item_rng(seed: int, *parts: object) -> random.Random:
    return random.Random(int(stable_id(seed, *parts), 16))


def add_typos(text: str, rate: float, rng: random.Random) -> str:
    """Keyboard-style noise: swapped, dropped and doubled letters, at ``rate`` per word."""
    words = text.split(" ")
    for i, w in enumerate(words):
        if len(w) > 3 and rng.random() < rate:
            j = rng.randrange(len(w) - 1)
            op = rng.choice(("swap", "drop", "double"))
            if op == "swap":
                w = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            elif op == "drop":
                w = w[:j] + w[j + 1:]
            else:
                w = w[:j] + w[j] + w[j:]
            words[i] = w
    return " ".join(words)


class ArchRouterRecipe:
    name = "arch_router"
    output_file = "arch_router.jsonl"

    def __init__(self, cfg: Mapping[str, Any], client: LLMClient):
        self.cfg = cfg
        self.client = client
        self.seed = int(cfg.get("seed", 0))
        self.stages = cfg["stages"]
        self.policies: list[dict] = []  # [{name, description, domain, intent}]
        self.prep_rejections: list[dict] = []
        self.prep_events: Counter = Counter()

    # ------------------------------------------------------------ stage 0-1
    async def prepare(self, run_dir=None) -> None:
        from pathlib import Path

        from router_lab.synth.run import NoRecords
        from router_lab.synth.store import atomic_write_text

        t = self.cfg.get("taxonomy") or {}
        tax = load_taxonomy(t.get("source", "auto"), t.get("path"), t.get("max_domains"), t.get("max_intents_per_domain"))
        pairs = route_pairs(tax)
        saved = Path(run_dir) / "policies.json" if run_dir is not None else None
        if saved is not None and saved.exists():
            slots = self._load_policies(saved, pairs)
        else:
            results = await gather_all(*(self._policy(d, i) for d, i in pairs))
            used: set[str] = set()
            slots = []
            for (d, i), pol in zip(pairs, results):
                if pol is None:
                    slots.append(None)
                    continue
                name = pol.name if pol.name not in used else f"{pol.name}_{d}_{i}"
                used.add(name)
                slots.append({"name": name, "description": pol.description, "domain": d, "intent": i})
            if saved is not None and any(slots):
                atomic_write_text(saved, json.dumps({"routes": [list(p) for p in pairs], "policies": slots,
                                                     "rejections": self.prep_rejections}, indent=1, ensure_ascii=False))
        self.routes, self.slots = pairs, slots
        self.policies = [p for p in slots if p]
        self.prep_events["routes"] = len(pairs)
        self.prep_events["policies_accepted"] = len(self.policies)
        if not self.policies:
            last = self.prep_rejections[-1]["reason"] if self.prep_rejections else "no routes in the taxonomy"
            raise NoRecords(f"no route policy could be generated for any of the {len(pairs)} routes (last: {last})")
        # Over all routes, not over the policies that happened to succeed.
        order = list(range(len(pairs)))
        random.Random(self.seed).shuffle(order)
        self._order = order

    def _load_policies(self, path, pairs: list[tuple[str, str]]) -> list[dict | None]:
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
            routes = [tuple(r) for r in rec["routes"]]
            slots = rec["policies"]
            self.prep_rejections = list(rec.get("rejections") or [])
            ok = len(slots) == len(routes) and all(
                s is None or (isinstance(s, dict) and {"name", "description", "domain", "intent"} <= set(s))
                for s in slots)
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise SynthConfigError(f"{path}: not a policies file this generator wrote (routes, policies); "
                                   f"restore it or start a new run dir")
        if routes != list(pairs):
            raise SynthConfigError(
                f"{path}: the run's recorded routes ({len(routes)}) differ from the taxonomy now configured "
                f"({len(pairs)}); resume with the same synth.taxonomy or start a new run dir")
        return slots

    def _slot(self, idx: int) -> tuple[tuple[str, str], dict | None]:
        k = self._order[idx % len(self._order)]
        return self.routes[k], self.slots[k]

    def check_logged(self, idx: int, row: dict) -> None:
        """A logged item must belong to the route the recorded policies give it now."""
        _, pol = self._slot(idx)
        want = pol["name"] if pol else None
        if row.get("route") != want:
            raise SynthConfigError(
                f"items.jsonl: item {idx} was generated for route {row.get('route')!r} but this run's policies "
                f"give route {want!r}: the policies changed since (policies.json replaced or removed?); "
                f"restore them or start a new run dir")

    async def _policy(self, domain: str, intent: str) -> RoutePolicy | None:
        rng = item_rng(self.seed, "policy", domain, intent)
        ctx = {"domain": domain, "intent": intent, "domain_words": domain.replace("_", " "),
               "intent_words": intent.replace("_", " ")}
        try:
            return (await self.client.ask(stage_request("policy", self.stages["policy"], ctx, rng, RoutePolicy))).obj
        except (InvalidReply, RequestFailed) as e:
            self.prep_rejections.append({"stage": "policy", "item": f"{domain}/{intent}", "reason": _reason(e)})
            return None

    def n_items(self) -> int:
        return int(self.cfg["n_items"])

    # ------------------------------------------------------------ stages 2-5, one item
    async def process(self, idx: int) -> dict:
        (domain, intent), pol = self._slot(idx)
        if pol is None:
            return {"item": idx, "route": None, "domain": domain, "status": "rejected", "outputs": [], "events": {},
                    "rejections": [{"stage": "policy", "layer": "structural",
                                    "reason": f"no route policy for {domain}/{intent} (its request failed)"}]}
        rng = item_rng(self.seed, "item", idx)
        turns_cfg = self.cfg.get("turns") or {}
        lo, hi = int(turns_cfg.get("min", 1)), int(turns_cfg.get("max", 3))
        n_user = rng.randint(lo, hi)
        judge_cfg = self.cfg.get("judge") or {}
        threshold = float(judge_cfg.get("threshold", 0.7))
        events: Counter = Counter()
        result = {"item": idx, "route": pol["name"], "domain": pol["domain"], "status": "rejected",
                  "rejections": [], "outputs": [], "events": events}
        feedback = ""
        tone = rng.choice(list(self.cfg.get("tones") or ["casual"]))
        convo = judge = None
        for attempt in range(int(judge_cfg.get("max_regenerations", 2)) + 1):
            ctx = {"route_name": pol["name"], "description": pol["description"], "domain": pol["domain"],
                   "intent": pol["intent"], "n_user_turns": n_user, "min_turns": lo, "max_turns": hi,
                   "feedback": feedback, "tone": tone}
            try:
                c = (await self.client.ask(stage_request("conversation", self.stages["conversation"], ctx, rng, Conversation,
                                                         sample=f"item{idx}/a{attempt}"))).obj
                n_got = sum(t.role == "user" for t in c.turns)
                if not lo <= n_got <= hi or c.turns[-1].role != "user":
                    raise InvalidReply(f"conversation has {n_got} user turns (expected {lo}..{hi}) "
                                       f"or does not end on a user turn")
                events["conversations"] += 1
                text = render_conversation([t.model_dump() for t in c.turns])
                jctx = {**ctx, "conversation_text": text}
                j = (await self.client.ask(stage_request("judge", self.stages["judge"], jctx, rng, AlignmentJudgement,
                                                         sample=f"item{idx}/a{attempt}"))).obj
                events["judged"] += 1
            except (InvalidReply, RequestFailed) as e:
                result["rejections"].append({"stage": "conversation", "layer": "structural", "reason": _reason(e),
                                             "attempt": attempt})
                events["invalid_conversation"] += 1
                feedback = "The previous reply was not valid; follow the format exactly."
                continue
            if j.score >= threshold:
                convo, judge = c, j
                break
            events["below_threshold"] += 1
            result["rejections"].append({"stage": "judge", "layer": "alignment",
                                         "reason": f"alignment {j.score:.2f} < {threshold}", "attempt": attempt})
            feedback = (f"A previous attempt scored {j.score:.2f} for alignment with the route: {j.reasoning} "
                        f"Keep every user turn clearly about this route.")
        if convo is None:
            result["rejections"].append({"stage": "item", "layer": result["rejections"][-1]["layer"],
                                         "reason": "no aligned conversation after regenerations"})
            return result
        result["status"] = "accepted"
        result["rejections"] = []  # regenerations that led to an accepted item are events, not rejections
        turns = [t.model_dump() for t in convo.turns]
        result["dedup_text"] = render_conversation(turns)
        for branch, bturns, target in await self._branches(idx, pol, turns, rng, events):
            out = self._output(idx, branch, pol, bturns, target, judge, rng)
            if self.cfg.get("scoring", {}).get("enabled"):
                try:
                    scores, costs = await score_query(self.client, self.cfg["scoring"], self.stages,
                                                      render_conversation(bturns), pol["domain"])
                except (InvalidReply, RequestFailed) as e:
                    # An unscored record would leave a hole in the score matrix: drop the branch.
                    events["scoring_failed"] += 1
                    result.setdefault("branch_rejections", []).append(
                        {"stage": "scoring", "branch": branch, "reason": _reason(e)})
                    continue
                out["record"]["scores"], out["record"]["costs"] = scores, costs
            events[f"branch_{branch}"] += 1
            result["outputs"].append(out)
        return result

    async def _branches(self, idx: int, pol: dict, turns: list[dict], rng: random.Random, events: Counter):
        aug = self.cfg.get("augment") or {}
        out = [("original", turns, pol["name"])]
        if rng.random() < float(aug.get("paraphrased", 0.0)):
            users = [t["content"] for t in turns if t["role"] == "user"]
            ctx = {"user_turns": users, "user_turns_text": "\n".join(f"- {u}" for u in users), "domain": pol["domain"]}
            try:
                p = (await self.client.ask(stage_request("paraphrase", self.stages["paraphrase"], ctx, rng, Paraphrase,
                                                         sample=f"item{idx}"))).obj
                if len(p.user_turns) != len(users):
                    raise InvalidReply(f"paraphrase has {len(p.user_turns)} user turns, expected {len(users)}")
                it = iter(p.user_turns)
                out.append(("paraphrased", [{**t, "content": next(it)} if t["role"] == "user" else t for t in turns],
                            pol["name"]))
            except (InvalidReply, RequestFailed) as e:
                events["paraphrase_failed"] += 1
                log.info("item paraphrase rejected: %s", _reason(e))
        if rng.random() < float(aug.get("noisy", 0.0)):
            rate = float(aug.get("noise_rate", 0.3))
            out.append(("noisy", [{**t, "content": add_typos(t["content"], rate, rng)} if t["role"] == "user" else t
                                  for t in turns], pol["name"]))
        if rng.random() < float(aug.get("irrelevant", 0.0)):
            pool = list(aug.get("irrelevant_queries") or offline.IRRELEVANT)
            out.append(("irrelevant", turns[:-1] + [{"role": "user", "content": rng.choice(pool)}], "other"))
        if rng.random() < float(aug.get("domain_mix", 0.0)) and len(self.routes) > 1:
            # From all taxonomy routes (the prefix needs only an intent), so an item's content
            # does not depend on which other policies were generated.
            _, other = rng.choice([r for r in self.routes if r[0] != pol["domain"]] or self.routes)
            prefix = [{"role": "user", "content": offline.user_turn(other, rng)},
                      {"role": "assistant", "content": rng.choice(offline.ASSISTANT)}]
            out.append(("domain_mix", prefix + turns, pol["name"]))
        return out

    def _output(self, idx: int, branch: str, pol: dict, turns: list[dict], target: str,
                judge: AlignmentJudgement, rng: random.Random) -> dict:
        k = int((self.cfg.get("augment") or {}).get("n_candidate_routes", 5))
        others = [p for p in self.policies if p["name"] != pol["name"]]
        # Its own draw: the candidate list depends on which policies exist, the record must not.
        crng = item_rng(self.seed, "candidates", idx, branch)
        cands = [pol] + crng.sample(others, min(max(k - 1, 0), len(others)))
        crng.shuffle(cands)
        rid = stable_id("synth", self.name, self.seed, idx, branch)
        arch = {"id": rid, "routes": [{"name": p["name"], "description": p["description"]} for p in cands],
                "conversation": turns, "target": target, "domain": pol["domain"], "branch": branch,
                "judge_score": judge.score, "judge_reasoning": judge.reasoning, "item": idx}
        rec = RoutingRecord(id=rid, conversation=turns, task=pol["domain"], label=target)
        return {"branch": branch, "label": target, "arch": arch, "record": dataclasses.asdict(rec)}

    def finalize(self, kept: list[dict], run_dir) -> dict:
        from router_lab.synth.store import atomic_write_jsonl

        atomic_write_jsonl(run_dir / self.output_file, [o["arch"] for r in kept for o in r["outputs"]])
        return {"routes": len(self.policies)}


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:300]}"
