"""Pydantic models the LLM stages answer with (instructor ``response_model``s).

Arch-Router stages: :class:`RoutePolicy` (LLM-1), :class:`Conversation` (LLM-2),
:class:`AlignmentJudgement` (LLM-3), :class:`Paraphrase`. Agent tool-call recipe:
:class:`AgentExample` whose ``response`` is a discriminated union on ``status``
(``running``: a thought and a tool call; ``complete``: a final answer). Pool scoring:
:class:`Answer` and :class:`Grade`.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, field_validator

_ROUTE_NAME = re.compile(r"[^a-z0-9]+")


def route_slug(text: str) -> str:
    """``"Freeze Account!"`` -> ``"freeze_account"``: route names are identifiers."""
    return _ROUTE_NAME.sub("_", text.lower()).strip("_")


# ---------------------------------------------------------------- Arch-Router

class RoutePolicy(BaseModel):
    """A route policy: a short identifier and a one- or two-sentence description."""

    name: str = Field(min_length=2, max_length=64, description="snake_case route name, e.g. 'banking_transfer'")
    description: str = Field(min_length=10, max_length=400, description="what requests this route covers")

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        slug = route_slug(v)
        if len(slug) < 2:
            raise ValueError("route name needs at least two letters or digits")
        return slug


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1)


class Conversation(BaseModel):
    """A multi-turn conversation whose last user turn belongs to the target route."""

    turns: list[Turn] = Field(min_length=1)

    @field_validator("turns")
    @classmethod
    def _user_first_and_last(cls, v: list[Turn]) -> list[Turn]:
        if v[0].role != "user":
            raise ValueError("the conversation must start with a user turn")
        if not any(t.role == "user" for t in v):
            raise ValueError("the conversation has no user turn")
        return v


class AlignmentJudgement(BaseModel):
    """LLM-3's verdict: does the conversation fit the route policy?"""

    score: float = Field(ge=0.0, le=1.0, description="1 = the conversation clearly belongs to the route")
    reasoning: str = Field(min_length=1)


class Paraphrase(BaseModel):
    """The user turns, reworded, same meaning, same count and order."""

    user_turns: list[str] = Field(min_length=1)


# ---------------------------------------------------------------- agent tool calls

class CodebaseSearchArgs(BaseModel):
    query: str = Field(min_length=3)
    mode: Literal["exact", "semantic", "hybrid"] = "semantic"


class FileManagerArgs(BaseModel):
    operation: Literal["read", "write", "patch", "list"]
    path: str = Field(min_length=1)
    content: str | None = None


class SandboxExecArgs(BaseModel):
    code: str = Field(min_length=1)
    timeout_s: int = Field(default=30, ge=1, le=30)


class AskHumanArgs(BaseModel):
    question: str = Field(min_length=3)
    reason: Literal["ambiguity", "high_risk", "missing_information"] = "ambiguity"


class CodebaseSearch(BaseModel):
    tool_name: Literal["codebase_search"]
    arguments: CodebaseSearchArgs


class FileManager(BaseModel):
    tool_name: Literal["file_manager"]
    arguments: FileManagerArgs


class SandboxExec(BaseModel):
    tool_name: Literal["sandbox_exec"]
    arguments: SandboxExecArgs


class AskHuman(BaseModel):
    tool_name: Literal["ask_human"]
    arguments: AskHumanArgs


ToolUse = Annotated[Union[CodebaseSearch, FileManager, SandboxExec, AskHuman], Field(discriminator="tool_name")]
TOOL_NAMES = ("codebase_search", "file_manager", "sandbox_exec", "ask_human")


class RunningStep(BaseModel):
    """Type A: a tool invocation."""

    status: Literal["running"]
    thought: str = Field(min_length=1)
    tool_use: ToolUse
    final_answer: None = None


class CompleteStep(BaseModel):
    """Type B: a direct answer."""

    status: Literal["complete"]
    thought: str | None = None
    tool_use: None = None
    final_answer: str = Field(min_length=1)


AgentResponse = Annotated[Union[RunningStep, CompleteStep], Field(discriminator="status")]


class AgentExample(BaseModel):
    """A user query and the agent's next step."""

    query: str = Field(min_length=3)
    response: AgentResponse


def agent_label(example: AgentExample) -> str:
    """The routing label of an agent example: the tool it calls, or ``direct_answer``."""
    r = example.response
    return r.tool_use.tool_name if isinstance(r, RunningStep) else "direct_answer"


# ---------------------------------------------------------------- pool scoring

class Answer(BaseModel):
    answer: str = Field(min_length=1)


class Grade(BaseModel):
    score: float = Field(ge=0.0, le=1.0, description="1 = fully correct and helpful")
    reasoning: str = ""


RESPONSE_MODELS = {m.__name__: m for m in (RoutePolicy, Conversation, AlignmentJudgement, Paraphrase,
                                             AgentExample, Answer, Grade)}
