"""Optional stage: score the LLM pool on every generated query.

Each pool LLM answers the query (``stages.answer``, the LLM's own ``model``); a judge grades
each answer in [0, 1] (``stages.grade``). Scores are the grades (``score_type``
"probability"); costs are the answer's token usage x the LLM's prices (per 1M tokens).
With these the output trains RouterDC and RankRouter as well as a classifier.

Scoring is the expensive stage (pool size x 2 requests per query), so it is keyed by the
query's content, not by the item that produced it: a query that another item of the run
already scored or is scoring (the same text, leading/trailing whitespace aside) shares that
scoring, with no new request. The domain is part of the key only where it can change the
scores: when a scoring prompt uses ``{domain}``, or the backend reads the context (the
offline simulator's per-domain skills). Exact duplicates, which dedup drops at the
end of the run, therefore cost nothing. The requests of a shared query are the same whichever
item asks first (the text sent, the model draw and the cache key all come from the content),
so runs stay deterministic and a resumed run replays them from the request cache. Case or
inner-whitespace variants are scored on their own (the LLMs would see different text).
"""
from __future__ import annotations

import asyncio
import hashlib
import random
from typing import Any, Mapping

from router_lab.synth.backends import LLMClient
from router_lab.synth.schemas import Answer, Grade
from router_lab.synth.stage import stage_request


def pool_names(scoring: Mapping[str, Any]) -> list[str]:
    return [str(l["name"]) for l in scoring.get("llms") or []]


def content_key(query: str, domain: str) -> str:
    return hashlib.sha1(f"{query.strip()}\x00{domain}".encode()).hexdigest()[:20]


def _domain_matters(client: LLMClient, stages: Mapping[str, Any]) -> bool:
    if getattr(client.backend, "reads_context", False):
        return True
    return any("{domain}" in str((stages.get(name) or {}).get(part) or "")
               for name in ("answer", "grade") for part in ("system", "prompt"))


async def score_query(client: LLMClient, scoring: Mapping[str, Any], stages: Mapping[str, Any],
                      query: str, domain: str) -> tuple[dict, dict]:
    """-> (scores, costs) keyed by pool LLM name. Raises like ``client.ask`` when a reply never
    comes (every item sharing the query sees the same error)."""
    query = query.strip()
    key = content_key(query, domain if _domain_matters(client, stages) else "")
    shared = client.shared.setdefault("scoring", {})
    task = shared.get(key)
    if task is None:
        task = shared[key] = asyncio.ensure_future(_score(client, scoring, stages, query, domain, key))
    else:
        client.stats.shared["scoring"] += 1  # a query scored by another item: 2 x pool-size requests saved
    scores, costs = await asyncio.shield(task)
    return dict(scores), dict(costs)


async def _score(client: LLMClient, scoring: Mapping[str, Any], stages: Mapping[str, Any],
                 query: str, domain: str, key: str) -> tuple[dict, dict]:
    rng = random.Random(key)  # the judge's model draw depends on the query, not on the item
    scores, costs = {}, {}
    for llm in scoring["llms"]:
        name = str(llm["name"])
        ctx = {"query": query, "domain": domain, "llm": name, "skill": float(llm.get("skill", 0.5))}
        ans_stage = {**stages["answer"], "models": [{"model": llm.get("model", name), "weight": 1}]}
        ans = await client.ask(stage_request("answer", ans_stage, ctx, rng, Answer, sample=f"score/{key}"))
        grade = await client.ask(stage_request("grade", stages["grade"], {**ctx, "answer": ans.obj.answer}, rng, Grade,
                                                sample=f"score/{key}"))
        scores[name] = float(grade.obj.score)
        costs[name] = (ans.usage.prompt_tokens * float(llm.get("price_in", 0.0))
                       + ans.usage.completion_tokens * float(llm.get("price_out", 0.0))) / 1e6
    return scores, costs
