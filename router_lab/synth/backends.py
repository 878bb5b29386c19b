"""LLM access for the generator: backends, the retry policy, the request cache.

    client = build_client(cfg, run_dir)          # offline | groq | openai
    reply = await client.ask(Request(stage="policy", model=..., temperature=0.3,
                                     messages=[...], response_model=RoutePolicy, context={...}))

Every request goes through :meth:`LLMClient.ask`: a content-hash cache lookup (a resumed
run replays finished requests instead of paying for them again), a concurrency bound,
then the backend with *our* retry policy (exponential backoff with jitter, ``retry-after``
honoured on 429, 5xx / timeouts / dropped connections retried). The SDKs' own retries are
off (``max_retries=0``) so every retry is ours and counted. A reply that does not
validate after instructor's re-asks is an :class:`InvalidReply`: the caller rejects the
item, the run goes on. API keys come from the environment or ``.env`` only and are never
logged or written.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import random
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

BACKENDS = ("offline", "groq", "openai")
DEFAULT_KEY_ENV = {"groq": "GROQ_API_KEY", "openai": "OPENAI_API_KEY"}


class SynthConfigError(ValueError):
    """A user-fixable problem with the generator's config or environment (one line)."""


class InvalidReply(Exception):
    """The model answered, but not with a valid ``response_model`` (after re-asks)."""


class TransientError(Exception):
    """Worth retrying: 429, 5xx, timeout, dropped connection."""

    def __init__(self, kind: str, retry_after: float | None = None):
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


class RequestFailed(Exception):
    """Retries exhausted; the item that needed the reply is rejected."""


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


# ---------------------------------------------------------------- retry policy

@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``retry-after`` (seconds) wins when the server sends it."""

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter: float = 0.5  # the delay is scaled by a uniform factor in [1 - jitter, 1]

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based: the first retry is 0)."""
        if retry_after is not None and retry_after >= 0:
            # At least what the server asked for; a little jitter on top spreads a burst.
            return min(retry_after * (1.0 + 0.1 * rng.random()), max(self.max_delay_s, retry_after))
        d = min(self.max_delay_s, self.base_delay_s * (2 ** attempt))
        return d * (1.0 - self.jitter * rng.random())


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


# ---------------------------------------------------------------- request cache

class RequestCache:
    """Append-only JSONL of ``{key, stage, model, reply, usage}``: finished requests survive a kill."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self._mem: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path and self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._mem[row["key"]] = row
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a kill: that request is simply redone
        self._fh = None

    def __len__(self) -> int:
        return len(self._mem)

    def get(self, key: str) -> dict | None:
        return self._mem.get(key)

    def put(self, key: str, req: Request, obj: BaseModel, usage: Usage) -> None:
        row = {"key": key, "stage": req.stage, "model": req.model,
               "reply": obj.model_dump(mode="json"),
               "usage": [usage.prompt_tokens, usage.completion_tokens]}
        with self._lock:
            self._mem[key] = row
            if self.path is None:
                return
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


# ---------------------------------------------------------------- stats

@dataclass
class Stats:
    requests: Counter = field(default_factory=Counter)  # per stage: API calls that returned
    cached: Counter = field(default_factory=Counter)
    invalid: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    retried: Counter = field(default_factory=Counter)  # per reason: 429, 5xx, timeout, ...
    shared: Counter = field(default_factory=Counter)  # per stage: work reused from another item (no request)
    tokens: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # "stage/model" -> [in, out]

    def to_dict(self) -> dict:
        return {
            "requests": dict(self.requests), "cached": dict(self.cached), "invalid": dict(self.invalid),
            "failed": dict(self.failed), "retried": dict(self.retried), "shared": dict(self.shared),
            "tokens": {k: {"prompt": v[0], "completion": v[1]} for k, v in sorted(self.tokens.items())},
        }


# ---------------------------------------------------------------- the client

class LLMClient:
    """Cache -> concurrency bound -> backend, with our retry policy around the backend."""

    def __init__(self, backend: Backend, cache: RequestCache, retry: RetryPolicy,
                 concurrency: int = 8, seed: int = 0, on_event=None):
        self.backend = backend
        self.cache = cache
        self.retry = retry
        self.concurrency = max(1, int(concurrency))
        self._sem: asyncio.Semaphore | None = None
        self.stats = Stats()
        self._rng = random.Random(seed)
        self.on_event = on_event or (lambda kind: None)
        self.shared: dict[str, dict] = {}  # per-run work shared between items (e.g. scoring by query content)

    async def ask(self, req: Request) -> Reply:
        key = req.key()
        hit = self.cache.get(key)
        if hit is not None:
            try:
                obj = req.response_model.model_validate(hit["reply"])
                self.stats.cached[req.stage] += 1
                return Reply(obj, Usage(*hit.get("usage", [0, 0])), hit.get("model", req.model), cached=True)
            except ValidationError:
                pass  # the schema changed since: ask again
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        for attempt in range(self.retry.max_attempts):
            async with self._sem:
                try:
                    obj, usage = await self.backend.complete(req)
                except TransientError as e:
                    err = e
                except InvalidReply:
                    self.stats.invalid[req.stage] += 1
                    raise
                else:
                    self.stats.requests[req.stage] += 1
                    t = self.stats.tokens[f"{req.stage}/{req.model}"]
                    t[0] += usage.prompt_tokens
                    t[1] += usage.completion_tokens
                    self.cache.put(key, req, obj, usage)
                    return Reply(obj, usage, req.model)
            if attempt + 1 >= self.retry.max_attempts:
                break
            self.stats.retried[err.kind] += 1
            self.on_event("retried")
            # Sleep outside the semaphore so a backing-off request does not hold a slot.
            await asyncio.sleep(self.retry.delay(attempt, err.retry_after, self._rng))
        self.stats.failed[req.stage] += 1
        raise RequestFailed(f"{req.stage}: gave up after {self.retry.max_attempts} attempts (last: {err.kind})")

    async def aclose(self) -> None:
        self.cache.close()
        if hasattr(self.backend, "aclose"):
            await self.backend.aclose()


# ---------------------------------------------------------------- real backends

def _api_key(kind: str, key_env: str | None) -> str:
    from dotenv import find_dotenv, load_dotenv

    # .env in the working directory (or a parent); the environment wins over it.
    load_dotenv(find_dotenv(usecwd=True), override=False)
    env = key_env or DEFAULT_KEY_ENV[kind]
    key = os.environ.get(env)
    if not key:
        raise SynthConfigError(
            f"synth.backend={kind} needs an API key in the environment variable {env} "
            f"(or a .env file); set it there, never in the config"
        )
    return key


class InstructorBackend:
    """groq / openai (any OpenAI-compatible ``base_url``: vLLM, Ollama, llama.cpp) via instructor TOOLS mode."""

    def __init__(self, kind: str, base_url: str | None, api_key_env: str | None,
                 timeout_s: float, validation_retries: int):
        import instructor

        self.name = kind
        self.timeout_s = float(timeout_s)
        self.validation_retries = int(validation_retries)
        key = _api_key(kind, api_key_env)
        if kind == "groq":
            import groq

            sdk = groq.AsyncGroq(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout_s)
            self._sdk = sdk
            self._client = instructor.from_groq(sdk, mode=instructor.Mode.TOOLS)
            self._errors = groq
        else:
            import openai

            sdk = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout_s)
            self._sdk = sdk
            self._client = instructor.from_openai(sdk, mode=instructor.Mode.TOOLS)
            self._errors = openai
        # instructor logs every failed call at ERROR; our counters and rejections say it once.
        for name in ("instructor", "instructor.v2.retry", "instructor.core.retry"):
            logging.getLogger(name).setLevel(logging.CRITICAL)

    async def aclose(self) -> None:
        """Close the HTTP pool inside the event loop (else httpx complains at exit)."""
        await self._sdk.close()

    async def complete(self, req: Request) -> tuple[Any, Usage]:
        from instructor.core.exceptions import InstructorRetryException

        kwargs: dict[str, Any] = dict(model=req.model, messages=req.messages, temperature=req.temperature,
                                      response_model=req.response_model, max_retries=self.validation_retries)
        if req.max_tokens:
            kwargs["max_tokens"] = req.max_tokens
        try:
            obj, completion = await asyncio.wait_for(
                self._client.chat.completions.create_with_completion(**kwargs),
                # The SDK enforces the per-request timeout; this only catches a hung re-ask chain.
                timeout=self.timeout_s * (self.validation_retries + 1) + 5,
            )
        except asyncio.TimeoutError:
            raise TransientError("timeout") from None
        except InstructorRetryException as e:
            raise self._classify(e.__cause__ or e) from None
        except Exception as e:  # noqa: BLE001 - classified below; unknown ones re-raised
            raise self._classify(e) from None
        u = getattr(completion, "usage", None)
        return obj, Usage(int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0))

    def _classify(self, e: BaseException) -> Exception:
        m = self._errors
        if isinstance(e, m.RateLimitError):
            return TransientError("429", parse_retry_after(e.response.headers.get("retry-after")))
        if isinstance(e, m.APITimeoutError):
            return TransientError("timeout")
        if isinstance(e, m.APIConnectionError):
            return TransientError("connection")
        if isinstance(e, m.APIStatusError):
            if e.status_code >= 500:
                return TransientError("5xx", parse_retry_after(e.response.headers.get("retry-after")))
            if e.status_code in (401, 403):
                return SynthConfigError(f"synth.backend={self.name}: the API refused the key ({e.status_code})")
            if e.status_code == 404:
                return SynthConfigError(f"synth.backend={self.name}: 404 from the API (wrong base_url or model?)")
            return InvalidReply(f"HTTP {e.status_code}")
        if isinstance(e, (ValidationError, json.JSONDecodeError, ValueError, TypeError, KeyError, AttributeError)):
            return InvalidReply(f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
        return InvalidReply(f"{type(e).__name__}: {str(e)[:200]}")


def build_backend(cfg: Mapping[str, Any]) -> Backend:
    kind = str(cfg.get("backend", "offline"))
    if kind not in BACKENDS:
        raise SynthConfigError(f"synth.backend is {kind!r}; expected one of {list(BACKENDS)}")
    if kind == "offline":
        from router_lab.synth.offline import OfflineBackend

        return OfflineBackend(cfg.get("offline") or {})
    return InstructorBackend(kind, cfg.get("base_url"), cfg.get("api_key_env"),
                             float(cfg.get("request_timeout_s", 60)), int(cfg.get("validation_retries", 1)))


def pick_model(models: Sequence[Mapping[str, Any]] | str, rng: random.Random) -> str:
    """Model roulette: a weighted draw from ``[{model, weight}, ...]`` (or a single name)."""
    if isinstance(models, str):
        return models
    models = list(models)
    if not models:
        raise SynthConfigError("a synth stage lists no models; expected [{model: name, weight: 1}, ...]")
    names = [str(m["model"]) if isinstance(m, Mapping) else str(m) for m in models]
    weights = [float(m.get("weight", 1.0)) if isinstance(m, Mapping) else 1.0 for m in models]
    return rng.choices(names, weights=weights, k=1)[0]
