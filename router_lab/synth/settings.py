"""The generator's settings schema: ``synth.*`` values are checked where they enter.

    check_settings(cfg)   # raises SynthConfigError naming the key, e.g.
                          # "synth.n_items: Input should be greater than or equal to 1 (got -5)"

A pydantic model over the keys whose type or range the generator relies on; other keys
(stage prompts, axes, prices, ...) pass through unchanged. ``run_synth`` calls it before
anything is written, so a bad value ends in one line and an untouched run dir.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router_lab.synth.backends import BACKENDS, SynthConfigError

Prob = Field(ge=0.0, le=1.0)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class RetrySettings(_Open):
    max_attempts: int = Field(6, ge=1)
    base_delay_s: float = Field(0.5, ge=0.0)
    max_delay_s: float = Field(30.0, ge=0.0)
    jitter: float = Field(0.5, ge=0.0, le=1.0)


class DedupSettings(_Open):
    enabled: bool = True
    method: Literal["minhash", "exact", "none"] = "minhash"
    threshold: float = Field(0.85, ge=0.0, le=1.0)
    num_perm: int = Field(64, ge=2)
    shingle: int = Field(3, ge=1)


class TurnsSettings(_Open):
    min: int = Field(1, ge=1)
    max: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "TurnsSettings":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max}); expected min <= max")
        return self


class JudgeSettings(_Open):
    threshold: float = Field(0.7, ge=0.0, le=1.0)
    max_regenerations: int = Field(2, ge=0)


class AugmentSettings(_Open):
    paraphrased: float = Prob
    noisy: float = Prob
    noise_rate: float = Prob
    irrelevant: float = Prob
    domain_mix: float = Prob
    n_candidate_routes: int = Field(5, ge=1)


class OfflineSettings(_Open):
    invalid_rate: float = Field(0.0, ge=0.0, le=1.0)
    off_policy_rate: float = Field(0.0, ge=0.0, le=1.0)
    defect_rate: float = Field(0.0, ge=0.0, le=1.0)
    latency_s: float = Field(0.0, ge=0.0)


class SynthSettings(_Open):
    recipe: Literal["arch_router", "agent_tools"]
    backend: Literal[BACKENDS]  # type: ignore[valid-type]
    seed: int = 0
    n_items: int = Field(ge=1)
    concurrency: int = Field(8, ge=1, le=4096)
    request_timeout_s: float = Field(60.0, gt=0.0)
    validation_retries: int = Field(1, ge=0)
    retry: RetrySettings = RetrySettings()
    dedup: DedupSettings = DedupSettings()
    turns: Optional[TurnsSettings] = None
    judge: Optional[JudgeSettings] = None
    augment: Optional[AugmentSettings] = None
    offline: Optional[OfflineSettings] = None
    intent_mix: Optional[dict[str, float]] = None

    @model_validator(mode="after")
    def _mix(self) -> "SynthSettings":
        if self.intent_mix is not None:
            if any(v < 0 for v in self.intent_mix.values()) or not sum(self.intent_mix.values()) > 0:
                raise ValueError("intent_mix: weights must be >= 0 and not all 0")
        return self


def check_settings(cfg: Mapping[str, Any]) -> SynthSettings:
    """Validate ``cfg`` (the ``synth`` group as a dict); one :class:`SynthConfigError` line if bad."""
    try:
        return SynthSettings.model_validate(dict(cfg))
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if p not in ("__root__",))
        where = f"synth.{loc}" if loc else "synth"
        msg = err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        shown = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        raise SynthConfigError(f"{where}: {msg}{shown}") from None
