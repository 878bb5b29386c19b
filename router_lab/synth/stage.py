"""One LLM stage from config: model roulette, temperature, prompt template -> a Request.

A stage config is ``{models: [{model, weight}], temperature, system, prompt, max_tokens}``;
``system`` and ``prompt`` are ``str.format`` templates over the stage's context (write
``{{`` / ``}}`` for a literal brace).
"""
from __future__ import annotations

import random
from typing import Any, Mapping

from pydantic import BaseModel

from router_lab.synth.backends import Request, SynthConfigError, pick_model


def render(template: str, context: Mapping[str, Any], where: str) -> str:
    try:
        return template.format(**context)
    except (KeyError, IndexError, ValueError) as e:
        raise SynthConfigError(
            f"{where}: the template refers to {e} which the stage does not provide; "
            f"available: {sorted(context)}"
        ) from None


def stage_request(name: str, stage: Mapping[str, Any], context: dict, rng: random.Random,
                  response_model: type[BaseModel], sample: str = "") -> Request:
    where = f"synth.stages.{name}"
    if not stage or "prompt" not in stage:
        raise SynthConfigError(f"{where}: missing; expected {{models, temperature, system, prompt}}")
    messages = []
    if stage.get("system"):
        messages.append({"role": "system", "content": render(stage["system"], context, where + ".system")})
    messages.append({"role": "user", "content": render(stage["prompt"], context, where + ".prompt")})
    return Request(stage=name, model=pick_model(stage.get("models") or [], rng),
                   temperature=float(stage.get("temperature", 0.7)), messages=messages,
                   response_model=response_model, context=context, max_tokens=stage.get("max_tokens"), sample=sample)
