"""The real groq / openai SDK clients, through instructor, against a scripted loopback server.

The server (``synth_fixtures.loopback``) answers on 127.0.0.1 with valid tool-call replies,
invalid JSON, schema-violating JSON, 429 + ``retry-after``, 500 and a stall past the
per-request timeout; the pipeline must finish with a valid dataset and count every retry.
"""
from __future__ import annotations

import json
import time

import pytest

from router_lab.data.loaders.saved import load_records_jsonl
from router_lab.synth.backends import (InvalidReply, LLMClient, Request, RequestCache, RetryPolicy,
                                       build_backend)
from router_lab.synth.run import NoRecords, run_synth
from router_lab.synth.schemas import RoutePolicy
from synth_fixtures.configs import loopback_updates, synth_cfg
from synth_fixtures.loopback import LoopbackLLM, pipeline_responder

SECRET = "sk-loopback-FAKE-SECRET-7f3a"


@pytest.mark.parametrize("backend", ["groq", "openai"])
def test_pipeline_survives_every_kind_of_bad_reply(tmp_path, monkeypatch, backend):
    monkeypatch.setenv("SYNTH_TEST_API_KEY", SECRET)
    script = ["429", "500", "invalid_json", "schema_violation", "stall", "invalid_json", "invalid_json"]
    with LoopbackLLM(script=script, stall_s=1.5, responder=pipeline_responder) as srv:
        cfg = synth_cfg("arch_router", n_items=10, concurrency=4, **loopback_updates(backend, srv, timeout_s=0.5))
        s = run_synth(cfg, tmp_path)
        counts = dict(srv.counts)
        auth = set(srv.auth_headers)
    assert all(counts.get(k) for k in ("429", "500", "invalid_json", "schema_violation", "stall")), counts
    assert auth == {f"Bearer {SECRET}"}  # the SDK really sent the key from the environment
    retried = s["stages"]["retried"]
    assert retried.get("429") and retried.get("5xx") and retried.get("timeout"), retried
    assert s["items"]["done"] == 10 and s["records"] > 0
    records = load_records_jsonl(tmp_path / "records.jsonl")
    assert len({r.id for r in records}) == len(records) == s["records"]
    # The key never reaches logs, configs or outputs.
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET not in f.read_text(errors="ignore"), f


def _client(srv, tmp_path, validation_retries=1, max_attempts=4, max_delay_s=0.2):
    backend = build_backend({"backend": "openai", "base_url": srv.openai_base_url, "api_key_env": "SYNTH_TEST_API_KEY",
                             "request_timeout_s": 0.5, "validation_retries": validation_retries})
    return LLMClient(backend, RequestCache(tmp_path / "cache.jsonl"),
                     RetryPolicy(max_attempts=max_attempts, base_delay_s=0.01, max_delay_s=max_delay_s), concurrency=2)


def _req(text="write a policy"):
    return Request(stage="policy", model="m", temperature=0.0, messages=[{"role": "user", "content": text}],
                   response_model=RoutePolicy)


def test_retry_after_is_honoured_and_replies_are_cached(tmp_path, monkeypatch):
    import asyncio

    monkeypatch.setenv("SYNTH_TEST_API_KEY", SECRET)
    with LoopbackLLM(script=["429"], retry_after="0.3") as srv:
        client = _client(srv, tmp_path, max_delay_s=1.0)
        t0 = time.perf_counter()
        reply = asyncio.run(client.ask(_req()))
        waited = time.perf_counter() - t0
        assert waited >= 0.3 and not reply.cached
        assert client.stats.retried["429"] == 1
        again = asyncio.run(client.ask(_req()))  # same content: from the cache, no request
        assert again.cached and again.obj.model_dump() == reply.obj.model_dump() and srv.counts["ok"] == 1
    row = json.loads((tmp_path / "cache.jsonl").read_text().splitlines()[0])
    assert row["key"] == _req().key() and row["reply"] == reply.obj.model_dump()


def test_invalid_replies_end_in_invalidreply_not_a_crash(tmp_path, monkeypatch):
    import asyncio

    monkeypatch.setenv("SYNTH_TEST_API_KEY", SECRET)
    with LoopbackLLM(script=["invalid_json", "schema_violation"]) as srv:
        client = _client(srv, tmp_path, validation_retries=1)
        with pytest.raises(InvalidReply):
            asyncio.run(client.ask(_req()))
        assert client.stats.invalid["policy"] == 1
        assert asyncio.run(client.ask(_req())).obj.name  # the next request is fine


def test_a_rejected_item_is_logged_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_API_KEY", SECRET)
    # Every reply schema-violating: every policy is rejected, the run stops with a clear error
    # (a user error: one line), the rejections are on disk and nothing looks like a result.
    with LoopbackLLM(script=["schema_violation"] * 200) as srv:
        cfg = synth_cfg("arch_router", n_items=3, validation_retries=0, **loopback_updates("openai", srv))
        with pytest.raises(NoRecords, match="no route policy"):
            run_synth(cfg, tmp_path)
    rejected = [json.loads(l) for l in (tmp_path / "rejections.jsonl").read_text().splitlines()]
    assert len(rejected) == 6 and all(r["stage"] == "policy" for r in rejected)
    assert not (tmp_path / "records.jsonl").exists() and not (tmp_path / "policies.json").exists()


def test_scoring_through_a_real_sdk_is_shared_across_domains_unless_a_prompt_uses_the_domain(tmp_path, monkeypatch):
    """With a real API the LLMs only see the prompt: the same query from two domains is scored
    once, unless a scoring prompt mentions {domain}."""
    import asyncio

    from router_lab.synth.scoring import score_query

    monkeypatch.setenv("SYNTH_TEST_API_KEY", SECRET)
    with LoopbackLLM(responder=pipeline_responder) as srv:
        cfg = synth_cfg("agent_tools", scoring={"enabled": True}, **loopback_updates("openai", srv))
        n_llms = len(cfg["scoring"]["llms"])

        async def run(stages):
            client = LLMClient(build_backend(cfg), RequestCache(None), RetryPolicy(2, 0.0, 0.0, 0.0), concurrency=4)
            out = await asyncio.gather(*(score_query(client, cfg["scoring"], stages, "Where is the retry logic?", d)
                                         for d in ("Fintech", "Gaming")))
            await client.aclose()
            return out, client.stats

        (a, b), stats = asyncio.run(run(cfg["stages"]))
        assert a == b and stats.requests["answer"] == n_llms and stats.shared["scoring"] == 1
        with_domain = {**cfg["stages"], "grade": {**cfg["stages"]["grade"],
                                                  "prompt": "Domain: {domain}\n" + cfg["stages"]["grade"]["prompt"]}}
        _, stats = asyncio.run(run(with_domain))
        assert stats.requests["answer"] == 2 * n_llms and not stats.shared["scoring"]


# ---------------------------------------------------------------- fault mode

#: Content-preserving faults (the same request, sent again, gets the same answer), picked
#: from each request's content the first time it is answered: two runs meet the same faults.
FAULT_MIX = {"empty_choices": 0.08, "non_json": 0.08, "429_long": 0.05, "429_date": 0.05, "500": 0.04}


def lost_policy_text() -> tuple[tuple[str, str], str]:
    """A route of the tests' small taxonomy and the text only its policy prompt contains."""
    from router_lab.synth.taxonomy import load_taxonomy, route_pairs

    d, i = route_pairs(load_taxonomy("builtin", None, 3, 2))[1]
    return (d, i), f'"{d.replace("_", " ")}" domain whose action is "{i.replace("_", " ")}"'


def _items(run_dir) -> dict[int, dict]:
    return {r["item"]: r for r in map(json.loads, (run_dir / "items.jsonl").read_text().splitlines())}


def test_fault_mode_loses_only_the_lost_route_and_counts_what_the_server_saw(tmp_path, monkeypatch):
    """Empty choices, non-JSON 200 bodies, a Retry-After of a day and one as an HTTP date, 500s,
    and one policy reply lost for good: the run finishes in seconds; every item whose route's
    policy was generated is exactly what a fault-free run makes (item -> route does not depend
    on the lost policy); the summary's request and token counts are the server's."""
    monkeypatch.setenv("SYNTH_TEST_API_KEY", SECRET)
    (lost_d, lost_i), lose = lost_policy_text()
    n = 24
    with LoopbackLLM(responder=pipeline_responder) as clean:
        run_synth(synth_cfg("arch_router", n_items=n, concurrency=4, **loopback_updates("openai", clean)),
                  tmp_path / "clean")
    # A Retry-After of a day (or an hour, as an HTTP date) is capped at max_delay_s (0.5 s here):
    # uncapped, this run would not end (RetryPolicy.delay is checked in test_synth.py).
    with LoopbackLLM(responder=pipeline_responder, keyed_faults=FAULT_MIX, lose=lose) as srv:
        cfg = synth_cfg("arch_router", n_items=n, concurrency=4, **loopback_updates("openai", srv))
        s = run_synth(cfg, tmp_path / "faulty")
        seen, total, tokens = dict(srv.counts), srv.total, list(srv.tokens)
    assert all(seen.get(k) for k in FAULT_MIX), seen
    # The summary counts what the server saw: every retry and instructor's silent re-asks.
    assert s["requests_sent"] == total
    assert s["tokens_total"] == {"prompt": tokens[0], "completion": tokens[1]}
    assert s["stages"]["retried"].get("empty_choices") and s["stages"]["retried"].get("429"), s["stages"]["retried"]
    assert sum(s["stages"]["reasked"].values()) >= 1  # the non-JSON 200 bodies
    # The lost policy: recorded, its items rejected, every other item unchanged.
    pol = json.loads((tmp_path / "faulty" / "policies.json").read_text())
    k = [tuple(r) for r in pol["routes"]].index((lost_d, lost_i))
    assert pol["policies"][k] is None and sum(p is None for p in pol["policies"]) == 1
    ref, got = _items(tmp_path / "clean"), _items(tmp_path / "faulty")
    assert sorted(got) == list(range(n))
    lost = [i for i, r in got.items() if r["status"] == "rejected" and r["rejections"][0]["stage"] == "policy"]
    assert lost and all(got[i]["route"] is None and got[i]["domain"] == lost_d for i in lost)
    for i in set(range(n)) - set(lost):
        assert got[i]["route"] == ref[i]["route"] and got[i]["status"] == ref[i]["status"], i
        assert [o["record"] for o in got[i]["outputs"]] == [o["record"] for o in ref[i]["outputs"]], i


def test_a_run_whose_policies_changed_is_refused(tmp_path):
    cfg = synth_cfg("arch_router", n_items=6)
    run_synth(cfg, tmp_path)
    path = tmp_path / "policies.json"
    pol = json.loads(path.read_text())
    # Another generation of the policies (another name for a route that has items).
    routes = {r["route"] for r in _items(tmp_path).values() if r.get("route")}
    k = next(j for j, p in enumerate(pol["policies"]) if p and p["name"] in routes)
    pol["policies"][k]["name"] = "renamed_route"
    path.write_text(json.dumps(pol))
    from router_lab.synth.backends import SynthConfigError

    with pytest.raises(SynthConfigError, match="policies changed"):
        run_synth(cfg, tmp_path)
    # A different taxonomy than the one recorded.
    with pytest.raises(SynthConfigError, match="differ"):
        run_synth({**cfg, "taxonomy": {**cfg["taxonomy"], "max_intents_per_domain": 1}, "resume_force": True},
                  tmp_path)


@pytest.mark.parametrize("recipe", ["arch_router", "agent_tools"])
def test_an_unreachable_server_ends_the_run_with_one_clear_error(tmp_path, monkeypatch, recipe):
    """Both recipes: no traceback pointing at files never written, no exit 0 with 0 records,
    and no item logged as rejected (a rerun once the server is up generates them)."""
    import socket

    from router_lab.synth.backends import BackendUnreachable

    monkeypatch.setenv("SYNTH_TEST_API_KEY", SECRET)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens once closed
    cfg = synth_cfg(recipe, n_items=4, backend="openai", base_url=dead, api_key_env="SYNTH_TEST_API_KEY",
                    retry={"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.02, "jitter": 0.0})
    with pytest.raises(BackendUnreachable, match="cannot reach " + dead):
        run_synth(cfg, tmp_path)
    assert not (tmp_path / "records.jsonl").exists()
    assert not (tmp_path / "items.jsonl").exists() or not (tmp_path / "items.jsonl").read_text().strip()
