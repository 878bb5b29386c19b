"""A scripted chat-completions server on 127.0.0.1, for tests and benchmarks.

    with LoopbackLLM(latency_s=0.2, fault_rate=0.1) as srv:
        client = openai.AsyncOpenAI(base_url=srv.openai_base_url, api_key="x")

Speaks POST ``/v1/chat/completions`` (OpenAI) and ``/openai/v1/chat/completions``
(Groq's base path). Valid replies are tool calls (instructor TOOLS mode) whose arguments
are made up from the request's tool JSON schema, deterministically from the request's
messages, so the same request always gets the same answer. Faults are scripted: a queue
consumed by the first requests (``script``) and/or exactly a fraction of all replies
(``fault_rate``, every 1/rate-th reply, alternating 429 and 500). ``keyed_faults`` picks a
fault from the request's content on the first time a request is seen ({fault: fraction}),
so two runs that send the same requests in any order meet the same faults; ``lose``
answers every request whose last message contains that text with empty ``choices`` (a
reply that is lost for good). ``hold()`` makes every new request wait (counted, in
flight) until ``release()``. Stalls are bounded (``stall_s``), and the server thread is
a daemon: nothing outlives the process. ``counts`` is what the server saw (one per HTTP
request), ``tokens`` the usage it reported.
"""
from __future__ import annotations

import email.utils
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

WORDS = (
    "account balance transfer card travel flight booking weather timer reminder music "
    "recipe order payment schedule meeting calendar policy route server config search "
    "query update request limit support report status review check plan list note "
    "refund deposit alarm playlist hotel train invoice budget email contract project"
).split()

FAULTS = ("invalid_json", "schema_violation", "429", "500", "stall",
          "empty_choices", "non_json", "429_long", "429_date")
LONG_RETRY_AFTER = "86400"  # a server asking for a day's wait


def _rng_for(key: str) -> random.Random:
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))


def fake_from_schema(schema: dict, rng: random.Random, defs: dict | None = None, name: str = "") -> Any:
    """A value that satisfies a (pydantic-produced) JSON schema."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return fake_from_schema(defs[schema["$ref"].split("/")[-1]], rng, defs, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return fake_from_schema(rng.choice(options), rng, defs, name)
    if "allOf" in schema:
        return fake_from_schema(schema["allOf"][0], rng, defs, name)
    t = schema.get("type", "string")
    if t == "object":
        props = schema.get("properties", {})
        return {k: fake_from_schema(v, rng, defs, k) for k, v in props.items()}
    if t == "array":
        lo = schema.get("minItems", 1)
        hi = schema.get("maxItems", max(lo, 3))
        return [fake_from_schema(schema.get("items", {}), rng, defs, name) for _ in range(rng.randint(lo, hi))]
    if t == "number":
        lo, hi = schema.get("minimum", 0.0), schema.get("maximum", 1.0)
        # Scores lean high, so a judge threshold of ~0.5 passes most of the time.
        return round(lo + (hi - lo) * (0.35 + 0.65 * rng.random()), 3)
    if t == "integer":
        return rng.randint(schema.get("minimum", 0), schema.get("maximum", 10))
    if t == "boolean":
        return rng.random() < 0.5
    if t == "null":
        return None
    if "path" in name:
        return "src/" + "_".join(rng.sample(WORDS, 2)) + ".py"
    n = max(8, schema.get("minLength", 0) // 5 + 1)
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(n, n + 6)))
    if "name" in name:
        text = "_".join(text.split()[:2])
    return text


class LoopbackLLM:
    """A loopback chat-completions server; a context manager that starts and stops it."""

    def __init__(
        self,
        latency_s: float = 0.0,
        script: list[str] | None = None,
        fault_rate: float = 0.0,
        retry_after: str = "0.1",
        stall_s: float = 3.0,
        responder: Callable[[dict, random.Random], dict] | None = None,
        keyed_faults: dict[str, float] | None = None,
        lose: str | None = None,
    ):
        self.latency_s = latency_s
        self.script = deque(script or [])
        self.fault_rate = fault_rate
        self.retry_after = retry_after
        self.stall_s = stall_s
        self.responder = responder
        self.keyed_faults = dict(keyed_faults or {})
        self.lose = lose
        self.counts: Counter = Counter()
        self.tokens = [0, 0]  # prompt, completion: the usage this server reported
        self.in_flight = 0
        self.held = 0  # requests waiting at the gate (hold()): neither answered nor counted in tokens
        self._gate = threading.Event()
        self._gate.set()
        self.seen: Counter = Counter()
        self.answered: Counter = Counter()
        self._drop_held = False
        self.auth_headers: list[str] = []
        self._lock = threading.Lock()
        self._fault_acc = 0.0
        self._n_faults = 0
        self._server: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> "LoopbackLLM":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                outer._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def groq_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def total(self) -> int:
        """HTTP requests this server answered or was answering."""
        return sum(self.counts.values())

    def hold(self) -> None:
        self._gate.clear()

    def release(self, drop: bool = False) -> None:
        """Let held requests go on; ``drop``: close them unanswered (their client is gone)."""
        self._drop_held = drop
        self._gate.set()

    # ------------------------------------------------------------ replies
    def _pick_fault(self, key: str, last_message: str) -> str | None:
        with self._lock:
            self.seen[key] += 1
            if self.lose and self.lose in last_message:
                return "empty_choices"
            if self.script:
                return self.script.popleft()
            # Until the request has been answered once: one that was cut off (a killed client)
            # meets the same fault when it is sent again.
            if self.keyed_faults and not self.answered[key]:
                u = _rng_for("fault" + key).random()
                for fault, frac in sorted(self.keyed_faults.items()):
                    if u < frac:
                        return fault
                    u -= frac
            # Exactly ``fault_rate`` of all replies are faults, alternating 429 / 500; a client
            # that retries loses nothing.
            if self.fault_rate > 0:
                self._fault_acc += self.fault_rate
                if self._fault_acc >= 1.0:
                    self._fault_acc -= 1.0
                    self._n_faults += 1
                    return "429" if self._n_faults % 2 else "500"
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("content-length") or 0))
        if h.path not in ("/v1/chat/completions", "/openai/v1/chat/completions"):
            return self._send(h, 404, {"error": {"message": f"no route {h.path}"}})
        with self._lock:
            self.auth_headers.append(h.headers.get("authorization", ""))
        req = json.loads(body)
        key = json.dumps([req.get("model"), req.get("messages"), req.get("tools")], sort_keys=True)
        last = str((req.get("messages") or [{}])[-1].get("content", ""))
        fault = self._pick_fault(key, last)
        with self._lock:
            self.counts[fault or "ok"] += 1
            self.in_flight += 1
        try:
            if not self._gate.is_set():
                with self._lock:
                    self.held += 1
                self._gate.wait()
                with self._lock:
                    self.held -= 1
                if self._drop_held:
                    h.close_connection = True
                    return
            self._reply(h, req, key, fault)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _reply(self, h: BaseHTTPRequestHandler, req: dict, key: str, fault: str | None) -> None:
        if self.latency_s:
            time.sleep(self.latency_s)
        if fault in ("429", "429_long", "429_date"):
            after = {"429": self.retry_after, "429_long": LONG_RETRY_AFTER,
                     "429_date": email.utils.formatdate(time.time() + 3600, usegmt=True)}[fault]
            return self._send(h, 429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                              {"retry-after": after}, key=key)
        if fault == "500":
            return self._send(h, 500, {"error": {"message": "internal error", "type": "server_error"}}, key=key)
        if fault == "stall":
            time.sleep(self.stall_s)
        if fault == "non_json":
            return self._send_raw(h, 200, b"<html><body>upstream proxy error</body></html>", "application/json", key=key)
        tool = (req.get("tools") or [{}])[0].get("function", {})
        rng = _rng_for(key)
        if fault == "invalid_json":
            args = '{"this is": not json'
        elif fault == "schema_violation":
            args = json.dumps({"unexpected_field": 42})
        elif self.responder is not None:
            args = json.dumps(self.responder(req, rng))
        else:
            args = json.dumps(fake_from_schema(tool.get("parameters", {}), rng))
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in req.get("messages", []))
        with self._lock:
            self.tokens[0] += prompt_tokens
            self.tokens[1] += len(args.split())
        reply = {
            "id": "chatcmpl-" + hashlib.sha1(key.encode()).hexdigest()[:12],
            "object": "chat.completion",
            "created": 0,
            "model": req.get("model", "loopback"),
            "choices": [{
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{
                        "id": "call_0", "type": "function",
                        "function": {"name": tool.get("name", "reply"), "arguments": args},
                    }],
                },
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(args.split()),
                      "total_tokens": prompt_tokens + len(args.split())},
        }
        if fault == "empty_choices":
            reply["choices"] = []
        self._send(h, 200, reply, key=key)

    def _send(self, h: BaseHTTPRequestHandler, status: int, obj: dict, headers: dict | None = None,
              key: str | None = None) -> None:
        self._send_raw(h, status, json.dumps(obj).encode(), "application/json", headers, key)

    def _send_raw(self, h: BaseHTTPRequestHandler, status: int, data: bytes, ctype: str,
                  headers: dict | None = None, key: str | None = None) -> None:
        if key is not None:
            # Counted as answered before the first byte goes out: a client that retries at once
            # (instructor's re-ask) must not race this thread and meet the keyed fault again.
            with self._lock:
                self.answered[key] += 1
        try:
            h.send_response(status)
            h.send_header("content-type", ctype)
            h.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer


def pipeline_responder(req: dict, rng: random.Random) -> dict:
    """Schema-faked replies, with the shapes the Arch-Router prompts ask for where a random
    value would rarely fit (alternating turns, as many paraphrases as user turns)."""
    tool = (req.get("tools") or [{}])[0].get("function", {})
    prompt = str(req["messages"][-1].get("content", ""))
    if tool.get("name") == "Conversation":
        m = re.search(r"exactly (\d+) user turn", prompt)
        n = int(m.group(1)) if m else 1
        turns = []
        for k in range(n):
            turns.append({"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))})
            if k < n - 1:
                turns.append({"role": "assistant", "content": " ".join(rng.choice(WORDS) for _ in range(5))})
        return {"turns": turns}
    if tool.get("name") == "Paraphrase":
        n = sum(1 for line in prompt.splitlines() if line.startswith("- "))
        return {"user_turns": [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(max(n, 1))]}
    return fake_from_schema(tool.get("parameters", {}), rng)
