"""The routing proxy with the real openai client: a router trained in-process, the proxy
and two loopback upstream LLMs served by uvicorn on 127.0.0.1 (ephemeral ports)."""
from __future__ import annotations

import socket
import time

import httpx
import openai
import pytest

from router_lab.api import Router
from router_lab.serve import create_app, loopback_upstream, run_in_thread
from test_api import train_tiny_run

MSGS = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi!"},
        {"role": "user", "content": "integrate x^2 from 0 to 1"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    run = train_tiny_run(tmp_path_factory.mktemp("serve_run"))
    with run_in_thread(loopback_upstream("A")) as a, run_in_thread(loopback_upstream("B")) as b:
        probe = Router.load(run)
        names = probe.llm_names
        dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
        endpoints = {n: {"model": f"m-{n}", "base_url": f"{a if i % 2 == 0 else b}/v1"} for i, n in enumerate(names)}
        routed = probe.route(MSGS).llm
        dead_llm = [n for n in names[2:] if n != routed][-1]
        endpoints[dead_llm] = {"model": "gone", "base_url": dead}
        endpoints[names[0]]["api_key_env"] = "ROUTER_LAB_TEST_KEY"
        router = Router.load(run, route_map={"endpoints": endpoints})
        app = create_app(router, max_concurrency=4, timeout=5.0, connect_timeout=2.0, queue_timeout=5.0)
        with run_in_thread(app) as proxy:
            yield {"proxy": proxy, "router": router, "names": names, "endpoints": endpoints, "dead": dead_llm, "run": run}


def client(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack["proxy"] + "/v1", api_key="unused", max_retries=0, timeout=10)


def test_health_and_models(stack):
    h = httpx.get(stack["proxy"] + "/health", timeout=5).json()
    assert h["status"] == "ok" and h["router"]["llms"] == stack["names"]
    ids = [m.id for m in client(stack).models.list()]
    assert ids[0] == "auto" and ids[1:] == stack["names"]


def test_routes_the_whole_conversation_and_returns_the_decision_in_headers(stack):
    router = stack["router"]
    raw = client(stack).chat.completions.with_raw_response.create(model="auto", messages=MSGS)
    expected = router.route(MSGS)
    assert raw.headers["x-router-llm"] == expected.llm
    assert float(raw.headers["x-router-confidence"]) == pytest.approx(expected.confidence, abs=1e-3)
    assert raw.headers["x-router-model"] == f"m-{expected.llm}"
    completion = raw.parse()
    ep = stack["endpoints"][expected.llm]["base_url"]
    upstream = "A" if stack["names"].index(expected.llm) % 2 == 0 else "B"
    assert ep and completion.choices[0].message.content == f"{upstream} answered m-{expected.llm}: {MSGS[-1]['content']}"


@pytest.mark.parametrize("forced_index", [0, 1])
def test_forced_model_and_streaming_pass_through(stack, forced_index, monkeypatch):
    monkeypatch.setenv("ROUTER_LAB_TEST_KEY", "sk-test-1234")
    llm = stack["names"][forced_index]
    c = client(stack)
    done = c.chat.completions.with_raw_response.create(model=llm, messages=MSGS)
    assert done.headers["x-router-llm"] == llm and done.headers["x-router-forced"] == "true"
    up = "A" if forced_index % 2 == 0 else "B"
    # the key reaches the upstream from the environment (the loopback echoes its last 4 chars)
    assert done.parse().system_fingerprint == ("1234" if forced_index == 0 else None)

    with c.chat.completions.with_streaming_response.create(model=llm, messages=MSGS, stream=True) as resp:
        assert resp.headers["x-router-llm"] == llm
        assert resp.headers["content-type"].startswith("text/event-stream")
        chunks = list(resp.parse())
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert len(chunks) > 3
    assert text == f"{up} answered m-{llm}: {MSGS[-1]['content']}"


def test_down_upstream_is_a_fast_502_naming_the_llm(stack):
    dead_llm = stack["dead"]
    t0 = time.perf_counter()
    with pytest.raises(openai.APIStatusError) as e:
        client(stack).chat.completions.create(model=dead_llm, messages=MSGS)
    assert time.perf_counter() - t0 < 5
    assert e.value.status_code == 502
    assert dead_llm in e.value.message and e.value.response.headers["x-router-llm"] == dead_llm
    with pytest.raises(openai.APIStatusError) as e:  # streaming too
        client(stack).chat.completions.create(model=dead_llm, messages=MSGS, stream=True)
    assert e.value.status_code == 502


@pytest.mark.parametrize("body,needle", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "expected an object"),
    (b'{"model": "auto"}', "'messages' is missing"),
    (b'{"messages": []}', "'messages' is missing or empty"),
    (b'{"messages": [{"content": "x"}]}', "messages[0]"),
    (b'{"messages": [{"role": "user", "content": 5}]}', "messages[0].content"),
    (b'{"messages": [{"role": "user", "content": "   "}]}', "empty query"),
    (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "'stream'"),
])
def test_malformed_requests_are_400_with_a_clear_message(stack, body, needle):
    r = httpx.post(stack["proxy"] + "/v1/chat/completions", content=body,
                   headers={"content-type": "application/json"}, timeout=5)
    assert r.status_code == 400
    assert needle in r.json()["error"]["message"]


def test_concurrent_requests_all_answer(stack):
    from concurrent.futures import ThreadPoolExecutor

    llm = stack["names"][1]
    c = client(stack)

    def one(i):
        return c.chat.completions.create(model=llm, messages=[{"role": "user", "content": f"q{i}"}])

    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(one, range(12)))
    assert [o.choices[0].message.content.rsplit(" ", 1)[-1] for o in outs] == [f"q{i}" for i in range(12)]
    assert httpx.get(stack["proxy"] + "/health", timeout=5).json()["in_flight"] == 0


def test_slow_upstream_times_out_with_504_naming_the_llm(stack):
    llm = stack["names"][0]
    with run_in_thread(loopback_upstream("slow", delay=3.0)) as slow:
        router = Router.load(stack["run"],
                             route_map={"endpoints": {llm: {"model": "s", "base_url": slow + "/v1"}}})
        with run_in_thread(create_app(router, timeout=0.5, connect_timeout=0.5)) as proxy:
            t0 = time.perf_counter()
            r = httpx.post(proxy + "/v1/chat/completions", json={"model": llm, "messages": MSGS}, timeout=10)
            assert time.perf_counter() - t0 < 2.5
    assert r.status_code == 504 and llm in r.json()["error"]["message"]


# ---------------------------------------------------------------- request limits and upstream rate limits

def test_oversized_body_is_413_and_deep_nesting_is_400_and_the_connection_survives(stack):
    app = create_app(stack["router"], max_concurrency=2, timeout=5.0, queue_timeout=5.0, max_body_mb=0.05)
    big = {"model": "auto", "messages": [{"role": "user", "content": "x " * 40_000}]}  # ~80 KB
    with run_in_thread(app) as proxy, httpx.Client(base_url=proxy, timeout=10) as c:
        r = c.post("/v1/chat/completions", json=big)
        assert r.status_code == 413 and "max_body_mb=0.05" in r.json()["error"]["message"]
        # Chunked, without a content-length: cut off as soon as it passes the limit.
        r = c.post("/v1/chat/completions", content=iter([b'{"messages": "' + b"y" * 30_000] * 3))
        assert r.status_code == 413
        ok = c.post("/v1/chat/completions", json={"model": "auto", "messages": MSGS})  # same connection
        assert ok.status_code == 200
    with httpx.Client(base_url=stack["proxy"], timeout=10) as c:  # the default limit (4 MiB)
        deep = b"[" * 200_000 + b"]" * 200_000
        r = c.post("/v1/chat/completions", content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]["message"]
        for bad in (5, None):  # a text part that is not a string
            msgs = [{"role": "user", "content": [{"type": "text", "text": bad}]}]
            r = c.post("/v1/chat/completions", json={"model": "auto", "messages": msgs})
            assert r.status_code == 400 and "messages[0].content[0].text" in r.json()["error"]["message"], r.text
        ok = c.post("/v1/chat/completions", json={"model": "auto", "messages": MSGS})  # same connection
        assert ok.status_code == 200 and ok.headers["x-router-llm"]


def test_an_upstream_429_passes_its_retry_after_to_the_client(stack):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    limited = FastAPI()

    @limited.post("/v1/chat/completions")
    async def chat():
        return JSONResponse({"error": {"message": "slow down", "type": "rate_limit"}}, status_code=429,
                            headers={"retry-after": "7", "x-ratelimit-remaining-requests": "0"})

    with run_in_thread(limited) as up:
        eps = {n: {"model": n, "base_url": f"{up}/v1"} for n in stack["names"]}
        router = Router.load(stack["run"], route_map={"endpoints": eps})
        with run_in_thread(create_app(router, timeout=5.0)) as proxy:
            for stream in (False, True):
                r = httpx.post(proxy + "/v1/chat/completions", timeout=10,
                               json={"model": "auto", "messages": MSGS, "stream": stream})
                assert r.status_code == 429 and r.headers["retry-after"] == "7", r.headers
                assert r.headers["x-ratelimit-remaining-requests"] == "0" and r.headers["x-router-llm"]


def test_a_huge_query_is_cut_to_the_encoders_window_before_tokenising(stack):
    router = stack["router"]
    words = "integrate the function from zero to one and explain every step carefully".split()
    text = " ".join(words[i % len(words)] + str(i % 7) for i in range(300_000))  # ~2.5 MB
    window, cut = router.window_text(text)
    assert cut and len(window) < 10_000
    full = router.tokenizer(text, truncation=True, max_length=router.spec.max_length)["input_ids"]
    ids, truncated = router._tokenize([text])
    assert ids[0] == full and truncated == [True]  # the same ids as tokenising everything
    short = "integrate x^2 from 0 to 1"
    assert router.window_text(short) == (short, False)
    assert router.route(text).truncated


def test_the_command_serves_until_ctrl_c_and_writes_nothing(stack, tmp_path):
    """python -m router_lab.serve (a Hydra entry point): options from the command line, the
    proxy answers, Ctrl-C ends it with status 0, and the working directory stays empty."""
    import os
    import signal
    import subprocess
    import sys

    import yaml

    from conftest import REPO

    rm = tmp_path / "rm.yaml"
    rm.write_text(yaml.safe_dump({"endpoints": stack["endpoints"]}))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    port = free_port()
    p = subprocess.Popen([sys.executable, "-m", "router_lab.serve", f"router={stack['run']}", f"route_map={rm}",
                          f"port={port}", "max_concurrency=2"], cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 120
        while True:
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()[1][-2000:]
            try:
                h = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert h["max_concurrency"] == 2 and h["router"]["llms"] == stack["names"]
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "key from $ROUTER_LAB_TEST_KEY" in err
    assert not list(cwd.iterdir())
