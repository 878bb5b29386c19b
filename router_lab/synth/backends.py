"""LLM access for the generator: backends, the retry policy, the request cache.

    client = build_client(cfg, run_dir)          # offline | groq | openai
    reply = await client.ask(Request(stage="policy", model=..., temperature=0.3,
                                     messages=[...], response_model=RoutePolicy, context={...}))

Every request goes through :meth:`LLMClient.ask`: a content-hash cache lookup (a resumed
run replays finished requests instead of paying for them again), a concurrency bound,
then the backend with *our* retry policy (exponential backoff with jitter, ``retry-after``
honoured on 429 -- seconds or an HTTP date, never longer than ``max_delay_s`` --, 5xx /
timeouts / dropped connections / empty ``choices`` retried). The SDKs' own retries are
off (``max_retries=0``) so every retry is ours and counted; instructor's re-asks (a reply
that failed validation, a 200 whose body is not JSON) are counted from the HTTP client's
own event hooks, so the counts are what the server saw. With a ``ledger`` file every event
is appended to it as it happens: a resumed run's totals (requests, tokens, cost) cover every
session, killed ones included. A reply that does not validate after instructor's re-asks
is an :class:`InvalidReply`: the caller rejects the item, the run goes on. A server that
cannot be reached at all ends the run with one line (:class:`BackendUnreachable`). API
keys come from the environment or ``.env`` only and are never logged or written.
"""
from __future__ import annotations

import asyncio
import contextvars
import email.utils
import json
import logging
import os
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from router_lab.errors import UserError
from router_lab.synth.offline import OfflineBackend
from router_lab.synth.store import JsonlAppender, read_jsonl_rows
from router_lab.synth.types import Backend, InvalidReply, Reply, Request, Usage  # noqa: F401 (the client's types)

log = logging.getLogger(__name__)

BACKENDS = ("offline", "groq", "openai")
DEFAULT_KEY_ENV = {"groq": "GROQ_API_KEY", "openai": "OPENAI_API_KEY"}


class SynthConfigError(UserError):
    """A user-fixable problem with the generator's config or environment (one line)."""


class BackendUnreachable(SynthConfigError):
    """No request ever got through: the server is down or ``base_url`` is wrong."""


class TransientError(Exception):
    """Worth retrying: 429, 5xx, timeout, dropped connection."""

    def __init__(self, kind: str, retry_after: float | None = None):
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


class RequestFailed(Exception):
    """Retries exhausted; the item that needed the reply is rejected."""


# ---------------------------------------------------------------- retry policy

@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``retry-after`` wins when the server sends it, up to
    ``max_delay_s`` (a server asking for a day does not stall the run for a day)."""

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter: float = 0.5  # the delay is scaled by a uniform factor in [1 - jitter, 1]

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based: the first retry is 0)."""
        if retry_after is not None and retry_after >= 0:
            # What the server asked for (capped); a little jitter on top spreads a burst.
            return min(retry_after * (1.0 + 0.1 * rng.random()), self.max_delay_s)
        d = min(self.max_delay_s, self.base_delay_s * (2 ** attempt))
        return d * (1.0 - self.jitter * rng.random())


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None  # unparseable: fall back to our own backoff
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# ---------------------------------------------------------------- request cache

class RequestCache:
    """Append-only JSONL of ``{key, stage, model, reply, usage}``: finished requests survive a kill."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self._mem: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path and self.path.exists():
            # a line cut short by a kill is skipped: that request is simply redone
            self._mem = {row["key"]: row for row in read_jsonl_rows(self.path) if "key" in row}
        self._out = JsonlAppender(self.path)

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
        self._out.append(row)

    def close(self) -> None:
        self._out.close()


@dataclass
class Stats:
    """Request counts and tokens. ``cached`` and ``shared`` are this session's; the rest, when
    the client has a ledger, cover every session of the run (the ledger is replayed)."""

    sent: Counter = field(default_factory=Counter)  # per stage: requests the server saw (retries and re-asks included)
    requests: Counter = field(default_factory=Counter)  # per stage: requests that returned a valid reply
    reasked: Counter = field(default_factory=Counter)  # per stage: instructor's extra requests (validation re-asks)
    status: Counter = field(default_factory=Counter)  # per HTTP status of the server's answers ("none": no answer)
    cached: Counter = field(default_factory=Counter)
    invalid: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    retried: Counter = field(default_factory=Counter)  # per reason: 429, 5xx, timeout, empty_choices, ...
    shared: Counter = field(default_factory=Counter)  # per stage: work reused from another item (no request)
    tokens: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # "stage/model" -> [in, out]
    sessions: int = 1

    def apply(self, row: Mapping[str, Any]) -> None:
        """Count one ledger event: ``{"e": kind, "s": stage, "m": model, ...}``."""
        e, stage = row.get("e"), row.get("s", "?")
        if e == "sent":
            self.sent[stage] += 1
        elif e == "reply":
            self.status[str(row.get("status", "none"))] += 1
            t = self.tokens[f"{stage}/{row.get('m', '?')}"]
            t[0] += int(row.get("in", 0))
            t[1] += int(row.get("out", 0))
        elif e == "ok":
            self.requests[stage] += 1
        elif e == "reask":
            self.reasked[stage] += int(row.get("n", 1))
        elif e == "invalid":
            self.invalid[stage] += 1
        elif e == "failed":
            self.failed[stage] += 1
        elif e == "retry":
            self.retried[str(row.get("k", "?"))] += 1
        elif e == "session":
            self.sessions += 1

    def to_dict(self) -> dict:
        return {
            "sent": dict(self.sent), "requests": dict(self.requests), "reasked": dict(self.reasked),
            "http_status": dict(self.status), "cached": dict(self.cached), "invalid": dict(self.invalid),
            "failed": dict(self.failed), "retried": dict(self.retried), "shared": dict(self.shared),
            "tokens": {k: {"prompt": v[0], "completion": v[1]} for k, v in sorted(self.tokens.items())},
            "sessions": self.sessions,
        }


class Ledger:
    """Append-only JSONL of request events, flushed per line: survives ``kill -9``."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.rows: list[dict] = list(read_jsonl_rows(self.path)) if self.path and self.path.exists() else []
        self._out = JsonlAppender(self.path)

    def append(self, row: dict) -> None:
        self._out.append(row)  # dropped for a request cancelled after the run ended

    def close(self) -> None:
        self._out.close()


#: The request being made in this task (stage, model, and what the HTTP hooks saw), so
#: the HTTP client's event hooks can attribute each request they see to it.
_TRACE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("synth_request_trace", default=None)


# ---------------------------------------------------------------- the client

class LLMClient:
    """Cache -> concurrency bound -> backend, with our retry policy around the backend."""

    def __init__(self, backend: Backend, cache: RequestCache, retry: RetryPolicy,
                 concurrency: int = 8, seed: int = 0, on_event=None, ledger: Ledger | None = None):
        self.backend = backend
        self.cache = cache
        self.retry = retry
        self.concurrency = max(1, int(concurrency))
        self._sem: asyncio.Semaphore | None = None
        self.stats = Stats()
        self.ledger = ledger or Ledger(None)
        for row in self.ledger.rows:
            self.stats.apply(row)
        if self.ledger.rows:
            self._event({"e": "session"})
        self._rng = random.Random(seed)
        self.on_event = on_event or (lambda kind: None)
        self.shared: dict[str, dict] = {}  # per-run work shared between items (e.g. scoring by query content)
        # Whether any request reached the server in this session: a resumed run against a
        # server that is down stops at once instead of logging its items as rejected.
        self._got_through = False
        # A backend that speaks HTTP reports each request it sends and each answer it gets.
        if hasattr(backend, "on_http"):
            backend.on_http = self._event

    def _event(self, row: dict) -> None:
        self.stats.apply(row)
        self.ledger.append(row)

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
        sm = {"s": req.stage, "m": req.model}
        http = hasattr(self.backend, "on_http")
        for attempt in range(self.retry.max_attempts):
            async with self._sem:
                trace = {**sm, "sent": 0, "answered": 0}
                token = _TRACE.set(trace)
                try:
                    if not http:
                        self._event({**sm, "e": "sent"})
                    obj, usage = await self.backend.complete(req)
                except TransientError as e:
                    err = e
                except InvalidReply:
                    self._event({**sm, "e": "invalid"})
                    raise
                else:
                    if not http:
                        self._event({**sm, "e": "reply", "status": 200, "in": usage.prompt_tokens,
                                     "out": usage.completion_tokens})
                    self._event({**sm, "e": "ok"})
                    self._got_through = True
                    self.cache.put(key, req, obj, usage)
                    return Reply(obj, usage, req.model)
                finally:
                    _TRACE.reset(token)
                    if trace["sent"] > 1:
                        self._event({**sm, "e": "reask", "n": trace["sent"] - 1})
                    if trace["answered"]:
                        self._got_through = True
            if attempt + 1 >= self.retry.max_attempts:
                break
            self._event({"e": "retry", "k": err.kind})
            self.on_event("retried")
            # Sleep outside the semaphore so a backing-off request does not hold a slot.
            await asyncio.sleep(self.retry.delay(attempt, err.retry_after, self._rng))
        self._event({**sm, "e": "failed"})
        if err.kind == "connection" and not self._got_through:
            raise BackendUnreachable(
                f"synth.backend={getattr(self.backend, 'name', '?')}: cannot reach "
                f"{getattr(self.backend, 'base_url', None) or 'the API'} (no connection after "
                f"{self.retry.max_attempts} attempts); is the server running and synth.base_url right?")
        raise RequestFailed(f"{req.stage}: gave up after {self.retry.max_attempts} attempts (last: {err.kind})")

    async def aclose(self) -> None:
        self.cache.close()
        self.ledger.close()
        if hasattr(self.backend, "aclose"):
            await self.backend.aclose()


async def gather_all(*aws):
    """``asyncio.gather``, but the first failure cancels the rest and waits for them, so no
    task is left running (or failing unobserved) after the run ends."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


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
        self.base_url = base_url
        self.timeout_s = float(timeout_s)
        self.validation_retries = int(validation_retries)
        #: Set by :class:`LLMClient`: called with each request sent and each answer received.
        self.on_http = None
        key = _api_key(kind, api_key_env)
        hooks = {"request": [self._on_request], "response": [self._on_response]}
        if kind == "groq":
            import groq

            sdk = groq.AsyncGroq(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout_s,
                                 http_client=groq.DefaultAsyncHttpxClient(event_hooks=hooks))
            self._sdk = sdk
            self._client = instructor.from_groq(sdk, mode=instructor.Mode.TOOLS)
            self._errors = groq
        else:
            import openai

            sdk = openai.AsyncOpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout_s,
                                     http_client=openai.DefaultAsyncHttpxClient(event_hooks=hooks))
            self._sdk = sdk
            self._client = instructor.from_openai(sdk, mode=instructor.Mode.TOOLS)
            self._errors = openai
        # instructor logs every failed call at ERROR; our counters and rejections say it once.
        for name in ("instructor", "instructor.v2.retry", "instructor.core.retry"):
            logging.getLogger(name).setLevel(logging.CRITICAL)

    async def aclose(self) -> None:
        """Close the HTTP pool inside the event loop (else httpx complains at exit)."""
        await self._sdk.close()

    def _emit(self, row: dict) -> None:
        if self.on_http is not None:
            self.on_http(row)

    async def _on_request(self, request) -> None:
        """httpx hook: every request the SDK sends, instructor's re-asks included."""
        trace = _TRACE.get()
        if trace is not None:
            trace["sent"] += 1
        self._emit({"e": "sent", "s": (trace or {}).get("s", "?"), "m": (trace or {}).get("m", "?")})

    async def _on_response(self, response) -> None:
        """httpx hook: the server's answer, with the usage it reports (re-asks' tokens are paid too)."""
        trace = _TRACE.get() or {}
        await response.aread()
        tokens, body = (0, 0), None
        try:
            body = json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            trace["last"] = "non_json"
        if isinstance(body, dict):
            u = body.get("usage") or {}
            if isinstance(u, dict):
                tokens = (int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))
            if response.status_code == 200:
                trace["last"] = "empty_choices" if not body.get("choices") else "ok"
        if "answered" in trace:
            trace["answered"] += 1
        self._emit({"e": "reply", "s": trace.get("s", "?"), "m": trace.get("m", "?"),
                    "status": response.status_code, "in": tokens[0], "out": tokens[1]})

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
        except Exception as e:  # noqa: BLE001 - classified below
            if (_TRACE.get() or {}).get("last") == "empty_choices":
                # A 200 without a choice: nothing to re-ask about, so ask again (our retry, counted).
                raise TransientError("empty_choices") from None
            if isinstance(e, InstructorRetryException):
                e = e.__cause__ or e
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
