"""The ``offline`` backend: procedural, deterministic replies for every stage, no network.

Each reply is a function of the request's content hash, so reruns and resumed runs get the
same answers. It imitates an LLM's failure modes at configurable rates (a schema-violating
reply, an off-policy conversation the judge scores low, an agent step that parrots the user
or runs ``rm -rf``) so the validation, regeneration and rejection paths run offline too.
"""
from __future__ import annotations

import hashlib
import random
from typing import Any, Mapping

from router_lab.synth.types import InvalidReply, Request, Usage

OPENERS = ["Hi,", "Hello!", "Hey there,", "Quick question:", "Good morning.", "Sorry to bother you,", "Okay so", ""]
ASKS = ["can you", "could you please", "I need you to", "would you", "please", "I'd like to", "help me"]
TAILS = ["today", "right now", "before Friday", "for my trip", "as soon as possible", "this week",
         "for the team", "if possible", "again", "for next month"]
NAMES = ["Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivan", "Jun"]
THINGS = ["the savings account", "my card ending 4411", "the Q3 report", "the Berlin office", "project Atlas",
          "the kitchen", "my mom's birthday", "the onboarding doc", "the API gateway", "invoice 2291"]
FOLLOWUPS = ["And what about {thing}?", "Also, can you do the same for {thing}?", "Thanks. Now {ask} check {thing} too",
             "Wait, does that include {thing}?", "Ok, and how long will it take for {thing}?",
             "One more thing: {ask} handle {thing} as well."]
ASSISTANT = ["Sure, I can help with that.", "Got it. Here is what I found.", "Done. Anything else?",
             "Let me look into that for you.", "I have updated it as requested.", "Here are the details."]
IRRELEVANT = ["What's the capital of Mongolia?", "Tell me a joke about penguins.", "Who won the 1998 World Cup?",
              "How many legs does a spider have?", "Write a haiku about autumn leaves.",
              "What does the fox say?", "Is a tomato a fruit or a vegetable?", "Recommend a good sci-fi novel."]
SYNONYMS = {"can you": "would you be able to", "please": "kindly", "help me": "assist me to", "need": "want",
            "check": "look at", "right now": "immediately", "also": "additionally", "thanks": "thank you",
            "how long": "how much time", "i'd like to": "i want to", "could you please": "can you"}


def _rng(key: str, salt: str = "") -> random.Random:
    return random.Random(int(hashlib.sha256((salt + key).encode()).hexdigest()[:16], 16))


def _words(text: str) -> str:
    return text.replace("_", " ")


def _usage(req: Request, obj: Any) -> Usage:
    prompt = sum(len(str(m.get("content", "")).split()) for m in req.messages)
    out = len(str(obj.model_dump()).split())
    return Usage(int(prompt * 1.3), int(out * 1.3))


def user_turn(intent: str, rng: random.Random) -> str:
    """One procedural user request for ``intent`` (also the prefix turns of arch_router's
    domain-mix augmentation)."""
    opener = rng.choice(OPENERS)
    body = f"{rng.choice(ASKS)} {_words(intent)} for {rng.choice(THINGS)} {rng.choice(TAILS)}"
    name = f" This is {rng.choice(NAMES)}." if rng.random() < 0.3 else ""
    return " ".join(x for x in (opener, body[0].upper() + body[1:] + "?", name) if x).strip()


class OfflineBackend:
    name = "offline"
    #: Replies depend on the request's context (domain, skill...), not only on the messages sent.
    reads_context = True

    def __init__(self, cfg: Mapping[str, Any] | None = None):
        cfg = dict(cfg or {})
        self.invalid_rate = float(cfg.get("invalid_rate", 0.03))
        self.off_policy_rate = float(cfg.get("off_policy_rate", 0.25))
        self.defect_rate = float(cfg.get("defect_rate", 0.2))
        self.latency_s = float(cfg.get("latency_s", 0.0))

    async def complete(self, req: Request) -> tuple[Any, Usage]:
        if self.latency_s:
            import asyncio

            await asyncio.sleep(self.latency_s)
        key = req.key()
        rng = _rng(key)
        if rng.random() < self.invalid_rate:
            raise InvalidReply("offline: simulated schema-violating reply")
        make = getattr(self, "_" + req.response_model.__name__, None)
        if make is None:
            raise InvalidReply(f"offline: no generator for {req.response_model.__name__}")
        obj = req.response_model.model_validate(make(req.context, rng))
        return obj, _usage(req, obj)

    # ------------------------------------------------------------ Arch-Router
    def _RoutePolicy(self, c: dict, rng: random.Random) -> dict:
        d, i = c["domain"], c["intent"]
        verb = rng.choice(["Handles", "Covers", "Routes", "Serves"])
        return {"name": f"{d}_{i}",
                "description": f"{verb} {_words(d)} requests where the user wants to {_words(i)}: "
                               f"questions, instructions and follow-ups about {_words(i)}."}

    def _Conversation(self, c: dict, rng: random.Random) -> dict:
        n = int(c.get("n_user_turns", 2))
        intent = c["intent"]
        if rng.random() < self.off_policy_rate:
            intent = rng.choice(["small_talk", "weather", "sports_scores", "random_trivia"])
        turns = []
        for k in range(n):
            if k == n - 1 or k == 0:
                user = user_turn(intent, rng)
            else:
                user = rng.choice(FOLLOWUPS).format(thing=rng.choice(THINGS), ask=rng.choice(ASKS))
            turns.append({"role": "user", "content": user})
            if k < n - 1:
                turns.append({"role": "assistant", "content": rng.choice(ASSISTANT)})
        return {"turns": turns}

    def _AlignmentJudgement(self, c: dict, rng: random.Random) -> dict:
        convo = c.get("conversation_text", "")
        on_policy = _words(c["intent"]).lower() in convo.lower()
        score = 0.72 + 0.28 * rng.random() if on_policy else 0.5 * rng.random()
        why = (f"The last user turn asks to {_words(c['intent'])}, matching the policy."
               if on_policy else f"The conversation drifts away from {_words(c['intent'])}.")
        return {"score": round(score, 3), "reasoning": why}

    def _Paraphrase(self, c: dict, rng: random.Random) -> dict:
        out = []
        for t in c["user_turns"]:
            s = t.lower()
            for a, b in SYNONYMS.items():
                if a in s and rng.random() < 0.8:
                    s = s.replace(a, b)
            out.append(s[:1].upper() + s[1:])
        return {"user_turns": out}

    # ------------------------------------------------------------ agent tool calls
    def _AgentExample(self, c: dict, rng: random.Random) -> dict:
        intent, domain, persona = c["intent"], c["domain"], c["persona"]
        thing = f"{rng.choice(['payment', 'auth', 'cache', 'search', 'billing', 'upload', 'session'])} " \
                f"{rng.choice(['service', 'module', 'handler', 'pipeline', 'worker'])}"
        fname = f"src/{domain.lower().replace(' ', '_')}/{thing.split()[0]}_{rng.choice(['api', 'core', 'utils'])}.py"
        style = c.get("style", "plain")
        prefix = {"urgent": "URGENT: ", "fragmented": "", "narrative": f"As a {persona} on a {domain} team, "}.get(style, "")
        if intent == "search":
            q = f"{prefix}where do we implement the {thing} retry logic in our {domain} codebase"
            resp = {"status": "running",
                    "thought": f"The {persona} asks where a concept lives, so semantic search over the code fits best.",
                    "tool_use": {"tool_name": "codebase_search",
                                 "arguments": {"query": f"{thing} retry logic", "mode": rng.choice(["semantic", "hybrid"])}}}
        elif intent == "file":
            op = rng.choice(["read", "patch"])
            q = f"{prefix}{op} {fname} and fix the {thing} timeout constant"
            args = {"operation": op, "path": fname}
            if op == "patch":
                args["content"] = "TIMEOUT_S = 30"
            resp = {"status": "running",
                    "thought": f"The user gave the explicit path {fname}, so a direct file operation is safe here.",
                    "tool_use": {"tool_name": "file_manager", "arguments": args}}
        elif intent == "compute":
            n = rng.randint(3, 40)
            q = f"{prefix}what is the p95 of {n} latency samples from the {thing}, can you compute it"
            resp = {"status": "running",
                    "thought": "Percentiles need exact arithmetic, so running a short Python snippet is most reliable.",
                    "tool_use": {"tool_name": "sandbox_exec",
                                 "arguments": {"code": f"import statistics\nxs = list(range({n}))\n"
                                                       "print(statistics.quantiles(xs, n=20)[-1])"}}}
        elif intent == "human":
            q = f"{prefix}drop the production {thing} database tables"
            resp = {"status": "running",
                    "thought": "Dropping production tables is irreversible, so a human must confirm before anything runs.",
                    "tool_use": {"tool_name": "ask_human",
                                 "arguments": {"question": f"Confirm dropping production tables for the {thing}?",
                                               "reason": "high_risk"}}}
        else:  # direct answer
            port = rng.choice([3000, 5000, 8000, 8080])
            q = f"{prefix}what port does the {thing} listen on by default"
            resp = {"status": "complete",
                    "final_answer": f"The {thing} listens on port {port} by default; override it with the PORT variable."}
        if rng.random() < self.defect_rate:
            resp = self._defect(q, resp, rng)
        return {"query": q, "response": resp}

    def _defect(self, q: str, resp: dict, rng: random.Random) -> dict:
        """An LLM-like mistake the validation layers are there to catch."""
        kind = rng.choice(["parrot", "short", "generic", "unsafe", "no_path"])
        if kind == "parrot" and resp["status"] == "running":
            resp["thought"] = q
        elif kind == "short" and resp["status"] == "running":
            resp["thought"] = "Use the tool."
        elif kind == "generic":
            resp = {"status": "complete", "final_answer": "I can help you with that."}
        elif kind == "unsafe":
            resp = {"status": "running", "thought": "Clean up the workspace completely before rerunning the job.",
                    "tool_use": {"tool_name": "sandbox_exec", "arguments": {"code": "import os\nos.system('rm -rf /tmp/work')"}}}
        else:
            resp = {"status": "running", "thought": "The configuration is probably in the usual settings file somewhere.",
                    "tool_use": {"tool_name": "file_manager", "arguments": {"operation": "read", "path": "config"}}}
        return resp

    # ------------------------------------------------------------ pool scoring
    def _Answer(self, c: dict, rng: random.Random) -> dict:
        return {"answer": f"[{c['llm']}] " + " ".join(rng.choice(ASSISTANT).split()[: rng.randint(3, 6)])}

    def _Grade(self, c: dict, rng: random.Random) -> dict:
        # A skill per LLM plus a per-(LLM, domain) affinity: the labels a router can learn.
        skill = float(c.get("skill", 0.5))
        affinity = _rng(f"{c['llm']}|{c.get('domain', '')}", "affinity").uniform(-0.25, 0.25)
        score = min(1.0, max(0.0, skill + affinity + rng.uniform(-0.15, 0.15)))
        return {"score": round(score, 3), "reasoning": "offline grade"}
