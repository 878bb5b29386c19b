"""OpenAI-compatible routing proxy: the router picks an LLM for each chat request (on the
whole conversation) and the request is forwarded to that LLM's endpoint.

    python -m router_lab.serve router=outputs/export/my_router route_map=conf/route_maps/example.yaml port=8000
    curl -s localhost:8000/health
    python -c "import openai; c = openai.OpenAI(base_url='http://localhost:8000/v1', api_key='x'); \
        print(c.chat.completions.create(model='auto', messages=[{'role': 'user', 'content': 'hi'}]))"

POST /v1/chat/completions: ``model`` = ``auto`` (or anything not in the pool) routes; a pool
LLM's name forces that LLM (no routing pass; confidence 1). The body is forwarded unchanged
except ``model``, which becomes the endpoint's model name; ``stream: true`` responses are
passed through chunk by chunk (SSE). The decision is in the response headers: ``x-router-llm``,
``x-router-confidence``, ``x-router-fallback``, ``x-router-cost``, ``x-router-model`` and, for
category routers, ``x-router-category`` (``x-router-fallback: true`` = out of scope). A
category router serves only with a route map whose policy gives every category and the
out-of-scope fallback an LLM (``category_map`` / ``default_llm``).

GET /health (router, pool, endpoints, requests in flight), GET /v1/models. The options are
Hydra overrides of ``conf/serve.yaml`` (``--help`` lists them, with their defaults).

Errors: a malformed request (not JSON, nested deeper than the parser goes, a text part
that is not a string) -> 400 with an OpenAI-style ``{"error": {"message": ...}}``; a body
over ``max_body_mb`` MiB -> 413 (read no further); an upstream that is down -> 502 naming
the LLM, one that does not answer within ``timeout`` seconds -> 504; no free slot within
``queue_timeout`` seconds (``max_concurrency`` requests in flight) -> 503. An upstream's
``retry-after`` (e.g. on its 429) is passed on to the client. The router reads at most the
encoder's ``max_length`` tokens of a conversation and the text is cut to that window before
it is tokenised (:meth:`Router.window_text`), so a maximal request costs about what a normal
one does; ``route_workers`` (default 2) routing passes run at once, so a short query does
not queue behind a long one (``benchmarks/proxy_big_request.py``). API keys come only from the environment variable named by the
route map's ``api_key_env`` and are never logged.
The endpoints come from ``route_map=YAML``; an export dir's own route map (its URLs and key
variables) is used only with ``trust_export=true``. At start the proxy logs which endpoint
receives which key variable (the variable's name, never its value).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from typing import Any, Iterator

import httpx
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from router_lab.api import Router, RoutingDecision
from router_lab.config_schema import ServeConfig
from router_lab.errors import UserError, hydra_cli, run_main

log = logging.getLogger("router_lab.serve")

AUTO_MODELS = ("auto", "router", "router_lab")
#: Upstream response headers passed on to the client (rate limits: when to come back).
PASS_HEADERS = ("retry-after", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens")
DEFAULT_MAX_BODY_MB = 4.0
class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (``BodyTooLarge``) as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                        headers=headers)


def check_chat_request(body: Any) -> str | None:
    """What is wrong with a chat-completions body, or None."""
    if not isinstance(body, dict):
        return f"request body is a JSON {type(body).__name__}; expected an object with 'messages'"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "'messages' is missing or empty; expected a non-empty list of {role, content}"
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            return f"messages[{i}] is not an object with a string 'role'"
        c = m.get("content")
        if c is not None and not isinstance(c, (str, list)):
            return f"messages[{i}].content is a {type(c).__name__}; expected a string or a list of parts"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "'stream' must be true or false"
    if "model" in body and not isinstance(body["model"], (str, type(None))):
        return "'model' must be a string"
    return None


def decision_headers(d, model: str | None, forced: bool) -> dict[str, str]:
    h = {"x-router-llm": d.llm or "", "x-router-confidence": f"{d.confidence:.4f}",
         "x-router-fallback": str(bool(d.fallback)).lower()}
    if d.category is not None:
        h["x-router-category"] = d.category
    if d.cost is not None:
        h["x-router-cost"] = f"{d.cost:.6g}"
    if model:
        h["x-router-model"] = model
    if forced:
        h["x-router-forced"] = "true"
    return h


def create_app(router: Router, max_concurrency: int = 32, timeout: float = 60.0, connect_timeout: float = 5.0,
               queue_timeout: float = 30.0, max_body_mb: float = DEFAULT_MAX_BODY_MB,
               route_workers: int = 2) -> FastAPI:
    """The proxy app over a loaded router (its route map gives the endpoints)."""
    check_label_routes(router)
    max_body = int(max_body_mb * 2 ** 20)
    state: dict[str, Any] = {"in_flight": 0}
    slots = asyncio.Semaphore(max_concurrency)
    # At most ``route_workers`` routing forward passes at a time (torch already uses every
    # core for one); 2 lets a short query pass a long one instead of queueing behind it.
    route_lock = threading.BoundedSemaphore(max(1, int(route_workers)))
    limits = httpx.Timeout(timeout, connect=connect_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        state["client"] = httpx.AsyncClient(timeout=limits, limits=httpx.Limits(max_connections=max_concurrency))
        yield
        await state["client"].aclose()

    app = FastAPI(title="router_lab routing proxy", lifespan=lifespan)

    def _route(messages):
        with route_lock:
            return router.route(messages)

    @app.get("/health")
    async def health():
        eps = {llm: (router.endpoint(llm) or {}).get("base_url") for llm in router.llm_names}
        return {"status": "ok", "router": router.describe(), "endpoints": eps, "in_flight": state["in_flight"],
                "max_concurrency": max_concurrency}

    @app.get("/v1/models")
    async def models():
        ids = ["auto", *router.llm_names]
        return {"object": "list", "data": [{"id": i, "object": "model", "owned_by": "router_lab"} for i in ids]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        try:
            raw = await read_body(request, max_body)
        except BodyTooLarge as e:
            return error_response(413, f"request body is {e.args[0]} bytes or more; this proxy accepts at most "
                                       f"{max_body} bytes (max_body_mb={max_body_mb:g})", "request_too_large")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return error_response(400, f"request body is not JSON ({e})", "invalid_request_error")
        except RecursionError:
            return error_response(400, "request body is JSON nested too deeply; expected a chat-completions "
                                       "object", "invalid_request_error")
        problem = check_chat_request(body)
        if problem:
            return error_response(400, problem, "invalid_request_error")
        try:
            await asyncio.wait_for(slots.acquire(), queue_timeout)
        except asyncio.TimeoutError:
            return error_response(503, f"proxy busy: {max_concurrency} requests in flight for {queue_timeout:g}s",
                                  "overloaded")
        state["in_flight"] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                state["in_flight"] -= 1
                slots.release()

        try:
            return await _forward(body, release)
        except BaseException:
            release()
            raise

    async def _forward(body: dict, release) -> Response:
        t0 = time.perf_counter()
        requested = body.get("model")
        forced = requested in router.llm_names
        if forced:  # no forward pass: the client chose
            d = RoutingDecision(llm=requested, confidence=1.0, scores={}, fallback=False,
                                cost=router.cost_of(requested))
        else:
            try:
                d = await run_in_threadpool(_route, body["messages"])
            except UserError as e:
                release()
                return error_response(400, str(e), "invalid_request_error")
        ep = router.endpoint(d.llm) if d.llm is not None else None
        if not ep:
            release()
            what = f"LLM {d.llm!r}" if d.llm is not None else f"category {d.category!r} (no LLM in the policy)"
            return error_response(502, f"no endpoint for {what} in the route map", "no_endpoint",
                                  decision_headers(d, None, forced))
        model = ep.get("model") or d.llm
        headers = decision_headers(d, model, forced)

        def answer_headers() -> dict[str, str]:
            # The decision, and what the upstream says about coming back (429's retry-after).
            return {**{k: upstream.headers[k] for k in PASS_HEADERS if k in upstream.headers}, **headers}
        up_headers = {"content-type": "application/json"}
        key = os.environ.get(ep["api_key_env"]) if ep.get("api_key_env") else None
        if key:
            up_headers["authorization"] = f"Bearer {key}"
        url = ep["base_url"].rstrip("/") + "/chat/completions"
        payload = {**body, "model": model}
        client: httpx.AsyncClient = state["client"]
        try:
            upstream = await client.send(client.build_request("POST", url, json=payload, headers=up_headers),
                                         stream=True)
        except httpx.TimeoutException:
            release()
            return error_response(504, f"upstream for LLM {d.llm!r} ({ep['base_url']}) did not answer within "
                                       f"{timeout:g}s", "upstream_timeout", headers)
        except httpx.HTTPError as e:
            release()
            return error_response(502, f"upstream for LLM {d.llm!r} ({ep['base_url']}) is unreachable: "
                                       f"{type(e).__name__}", "upstream_unreachable", headers)
        log.info("routed to %s (confidence %.3f%s) -> %s %d, %.1f ms to upstream headers", d.llm, d.confidence,
                 ", fallback" if d.fallback else "", model, upstream.status_code, 1e3 * (time.perf_counter() - t0))
        media = upstream.headers.get("content-type", "application/json")
        if not body.get("stream"):
            try:
                content = await upstream.aread()
            except httpx.HTTPError as e:
                return error_response(502, f"upstream for LLM {d.llm!r} failed mid-response: {type(e).__name__}",
                                      "upstream_error", headers)
            finally:
                await upstream.aclose()
                release()
            return Response(content, status_code=upstream.status_code, media_type=media, headers=answer_headers())

        async def close() -> None:
            await upstream.aclose()
            release()

        async def passthrough():
            try:
                async for chunk in upstream.aiter_raw():
                    yield chunk
            except httpx.HTTPError as e:
                # Headers are gone already: tell the client in the stream, then end it.
                msg = {"error": {"message": f"upstream for LLM {d.llm!r} failed mid-stream: {type(e).__name__}"}}
                yield f"data: {json.dumps(msg)}\n\n".encode()
            finally:
                await close()

        return StreamingResponse(passthrough(), status_code=upstream.status_code, media_type=media,
                                 headers=answer_headers(), background=BackgroundTask(close))

    return app


# ------------------------------------------------------------------ running in-process

@contextlib.contextmanager
def run_in_thread(app, host: str = "127.0.0.1", startup_timeout: float = 20.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread on an ephemeral port; yields its base
    URL (``http://127.0.0.1:PORT``) and stops the server on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False,
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def loopback_upstream(name: str, delay: float = 0.0, max_echo: int | None = None) -> FastAPI:
    """A stand-in OpenAI-compatible LLM for tests and benchmarks: answers
    ``"<name> answered <model>: <last user message>"`` (its first ``max_echo`` characters),
    streaming it word by word on request."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if delay:
            await asyncio.sleep(delay)
        last = body["messages"][-1].get("content", "")
        if max_echo is not None:
            last = str(last)[:max_echo]
        text = f"{name} answered {body.get('model')}: {last}"
        auth = request.headers.get("authorization", "")
        base = {"id": f"cmpl-{name}", "created": 0, "model": body.get("model")}
        if not body.get("stream"):
            return {**base, "object": "chat.completion", "system_fingerprint": auth[-4:] or None,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 1}}

        async def events():
            for i, word in enumerate(text.split(" ")):
                delta = {"content": (" " if i else "") + word, **({"role": "assistant"} if i == 0 else {})}
                chunk = {**base, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            end = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {},
                                                                            "finish_reason": "stop"}]}
            yield f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


# ------------------------------------------------------------------ entry point

def log_endpoints(router: Router) -> list[str]:
    """One line per LLM: where its requests go and which environment variable is sent as
    the key (the name only; values are never logged)."""
    lines = []
    for llm in router.llm_names:
        ep = router.endpoint(llm)
        if ep:
            key = f"key from ${ep['api_key_env']}" if ep.get("api_key_env") else "no key"
            lines.append(f"endpoint {llm} -> {ep['base_url']} (model {ep.get('model') or llm}; {key})")
        else:
            lines.append(f"endpoint {llm} -> none (requests routed there get 502)")
    for line in lines:
        log.info(line)
    return lines


def check_label_routes(router: Router) -> None:
    """A category router must send every category, and out-of-scope queries, to some LLM."""
    if not router.label_router:
        return
    probs = torch.eye(len(router.categories))  # one certain decision per category ...
    d = router.apply_policy({"probs": torch.cat([probs, torch.full((1, len(router.categories)), 0.0)])})
    unrouted = [router.categories[i] for i in range(len(router.categories)) if d["llm"][i] < 0]
    if unrouted:
        raise UserError(f"the route map sends categories {unrouted[:5]}{'...' if len(unrouted) > 5 else ''} to no LLM; "
                        "expected policy.category_map for each or policy.default_llm (docs/routing.md)")
    if d["fallback"][-1] and d["llm"][-1] < 0:  # ... and one with no confidence at all
        raise UserError("the route map's confidence_threshold sends out-of-scope queries to no LLM; "
                        "expected policy.fallback_llm or policy.default_llm")


def _check_address(host: str, port: int) -> None:
    """Fail in one line, before loading anything, if ``host:port`` cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UserError(f"host={host!r}: cannot resolve it ({e.strerror}); expected an address such as 127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            raise UserError(f"host={host} port={port}: cannot listen there ({e.strerror}); "
                            "expected a free port (port=...)") from None


def serve(opts: ServeConfig) -> None:
    import uvicorn

    if not opts.router:
        raise UserError("expected router=PATH (an export dir, a run dir or a .ckpt)")
    _check_address(opts.host, opts.port)
    if opts.threads > 0:
        import torch

        torch.set_num_threads(opts.threads)
    router = Router.load(opts.router, route_map=opts.route_map or None, quantize=opts.quantize or None,
                         runtime=opts.runtime, trust_export=opts.trust_export)
    missing = [l for l in router.llm_names if not router.endpoint(l)]
    if len(missing) == len(router.llm_names):
        suggested = (router.suggested_route_map.get("endpoints") or {}) if not opts.route_map else {}
        hint = (" (the export dir suggests endpoints; they are data and are used only with trust_export=true)"
                if suggested and not opts.trust_export else "")
        raise UserError("the route map has no endpoint for any of the router's LLMs "
                        f"{router.llm_names}; expected route_map=YAML with endpoints (conf/route_maps/example.yaml)"
                        + hint)
    if missing:
        log.warning("no endpoint for %s: requests routed there get 502", missing)
    log_endpoints(router)
    app = create_app(router, opts.max_concurrency, opts.timeout, opts.connect_timeout, opts.queue_timeout,
                     max_body_mb=opts.max_body_mb, route_workers=opts.route_workers)
    uvicorn.run(app, host=opts.host, port=opts.port, log_level="info")


@hydra_cli("serve", schema=ServeConfig, options=True)
def main(opts: ServeConfig) -> None:
    from router_lab import console

    console.configure()
    run_main(serve, opts)


if __name__ == "__main__":
    main()
