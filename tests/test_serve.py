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
