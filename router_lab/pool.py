"""The LLM pool: which LLMs a router chooses between, what each costs, where each lives.

Configured in ``conf/llm_pool/*.yaml``::

    name: synthetic
    llms:
      - {name: small-fast, cost: 0.1}
      - {name: big-slow, cost: 1.0, endpoint: {model: gpt-x, base_url: http://...}}

``cost`` is the price of one routed query in the pool's unit (e.g. USD per 1k queries);
per-record costs in the data, where present, take precedence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from router_lab.errors import UserError


class PoolError(UserError):
    """An LLM name or pool setting that does not fit the configured pool."""


@dataclass(frozen=True)
class LLM:
    name: str
    cost: float = 0.0
    endpoint: dict | None = None


@dataclass(frozen=True)
class LLMPool:
    llms: tuple[LLM, ...]
    name: str = "pool"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "LLMPool":
        cfg = dict(cfg or {})
        llms = []
        for i, item in enumerate(cfg.get("llms") or []):
            if isinstance(item, str):
                llms.append(LLM(item))
                continue
            item = dict(item)
            if "name" not in item:
                raise PoolError(f"llm_pool.llms[{i}] has no 'name'; expected {{name, cost, endpoint}}")
            llms.append(LLM(str(item["name"]), float(item.get("cost", 0.0) or 0.0), item.get("endpoint")))
        names = [l.name for l in llms]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise PoolError(f"llm_pool lists {dup} more than once")
        return cls(tuple(llms), str(cfg.get("name", "pool")))

    @classmethod
    def from_names(cls, names: Sequence[str], costs: Mapping[str, float] | None = None) -> "LLMPool":
        costs = costs or {}
        return cls(tuple(LLM(n, float(costs.get(n, 0.0))) for n in names))

    @property
    def names(self) -> list[str]:
        return [l.name for l in self.llms]

    @property
    def costs(self) -> list[float]:
        return [l.cost for l in self.llms]

    def __len__(self) -> int:
        return len(self.llms)

    def __bool__(self) -> bool:
        return bool(self.llms)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise PoolError(f"unknown LLM {name!r}; the pool is {self.names}") from None

    def to_config(self) -> dict:
        return {
            "name": self.name,
            "llms": [
                {"name": l.name, "cost": l.cost, **({"endpoint": dict(l.endpoint)} if l.endpoint else {})}
                for l in self.llms
            ],
        }
