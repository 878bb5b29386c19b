"""The types every backend and the client share: a request, its reply and token usage, the
backend protocol and the invalid-reply error (``backends`` and ``offline`` both import them
from here, so neither imports the other's module for them)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel


class InvalidReply(Exception):
    """The model answered, but not with a valid ``response_model`` (after re-asks)."""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Request:
    stage: str
    model: str
    temperature: float
    messages: list[dict]
    response_model: type[BaseModel]
    #: The template variables the prompt was rendered from; the offline backend generates
    #: from these (a real LLM only sees ``messages``). Not part of the cache key.
    context: dict = field(default_factory=dict)
    max_tokens: int | None = None
    #: Which draw this is (e.g. ``item7/a0``): two items may send the same prompt and must
    #: still get their own sample, so it is part of the cache key (not sent to the API).
    sample: str = ""

    def key(self) -> str:
        """Content hash of everything that determines the reply."""
        blob = json.dumps(
            [self.stage, self.model, round(float(self.temperature), 4), self.messages, self.sample,
             self.response_model.__name__, self.response_model.model_json_schema()],
            sort_keys=True, ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


@dataclass
class Reply:
    obj: Any
    usage: Usage
    model: str
    cached: bool = False


class Backend(Protocol):
    name: str

    async def complete(self, req: Request) -> tuple[Any, Usage]: ...
