"""Optional stage: score the LLM pool on every generated query.

Each pool LLM answers the query (``stages.answer``, the LLM's own ``model``); a judge grades
each answer in [0, 1] (``stages.grade``). Scores are the grades (``score_type``
"probability"); costs are the answer's token usage x the LLM's prices (per 1M tokens).
With these the output trains RouterDC and RankRouter as well as a classifier.
"""
from __future__ import annotations

import random
from typing import Any, Mapping

from router_lab.synth.backends import LLMClient
from router_lab.synth.schemas import Answer, Grade
from router_lab.synth.stage import stage_request


def pool_names(scoring: Mapping[str, Any]) -> list[str]:
    return [str(l["name"]) for l in scoring.get("llms") or []]


async def score_query(client: LLMClient, scoring: Mapping[str, Any], stages: Mapping[str, Any],
                      query: str, domain: str, rng: random.Random, sample: str = "") -> tuple[dict, dict]:
    """-> (scores, costs) keyed by pool LLM name. Raises like ``client.ask`` when a reply never comes."""
    scores, costs = {}, {}
    for llm in scoring["llms"]:
        name = str(llm["name"])
        ctx = {"query": query, "domain": domain, "llm": name, "skill": float(llm.get("skill", 0.5))}
        ans_stage = {**stages["answer"], "models": [{"model": llm.get("model", name), "weight": 1}]}
        ans = await client.ask(stage_request("answer", ans_stage, ctx, rng, Answer, sample=sample))
        grade = await client.ask(stage_request("grade", stages["grade"], {**ctx, "answer": ans.obj.answer}, rng, Grade,
                                                sample=sample))
        scores[name] = float(grade.obj.score)
        costs[name] = (ans.usage.prompt_tokens * float(llm.get("price_in", 0.0))
                       + ans.usage.completion_tokens * float(llm.get("price_out", 0.0))) / 1e6
    return scores, costs
