"""Synthetic-data generator: pure parts on hand-built inputs, and offline end-to-end runs."""
from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from router_lab import ROOT
from router_lab.data.loaders.saved import load_records_jsonl
from router_lab.data.records import dataset_llm_names, dataset_to_records
from router_lab.synth.agent_tools import check_domain_safety, check_quality, format_chat, stratified_split
from router_lab.synth.arch_router import add_typos
from router_lab.synth.backends import RetryPolicy, SynthConfigError, build_backend, parse_retry_after, pick_model
from router_lab.synth.dedup import find_duplicates
from router_lab.synth.quality import distinct_n, layer_pass_rates
from router_lab.synth.run import run_synth
from router_lab.synth.schemas import AgentExample
from router_lab.synth.taxonomy import BUILTIN_TAXONOMY, load_taxonomy
from synth_fixtures.configs import synth_cfg


# ---------------------------------------------------------------- pure parts

def test_retry_policy_backoff_and_retry_after():
    p = RetryPolicy(max_attempts=5, base_delay_s=0.5, max_delay_s=4.0, jitter=0.5)
    rng = random.Random(0)
    for attempt, full in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (6, 4.0)]:
        d = p.delay(attempt, None, rng)
        assert full * 0.5 <= d <= full
    # retry-after wins, and is never undercut, up to max_delay_s: a server asking for a day
    # does not stall the run for a day
    assert all(2.0 <= p.delay(0, 2.0, rng) <= 2.2 for _ in range(50))
    assert all(p.delay(0, 86400.0, rng) == 4.0 for _ in range(5))
    # delta-seconds and the HTTP-date form (RFC 9110); a date in the past means now
    assert parse_retry_after("0.1") == 0.1 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    now = 1_445_412_450.0  # 2015-10-21 07:27:30 UTC
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 30.0


def test_model_roulette_follows_weights():
    rng = random.Random(0)
    draws = [pick_model([{"model": "a", "weight": 3}, {"model": "b", "weight": 1}], rng) for _ in range(4000)]
    assert 0.7 < draws.count("a") / 4000 < 0.8
    with pytest.raises(SynthConfigError):
        pick_model([], rng)


def test_dedup_exact_and_near():
    texts = ["How do I reset my PIN for the debit card today please",
             "how do i reset my pin   for the debit card today please",       # exact after normalising
             "How do I reset my PIN for the debit card today please now",     # near
             "Book a table for two at an Italian place tonight"]
    d = find_duplicates(texts, "minhash", threshold=0.7, num_perm=128, shingle=2)
    assert d == {1: ("exact", 0), 2: ("near", 0)}
    assert find_duplicates(texts, "exact") == {1: ("exact", 0)}


def test_distinct_2_and_layer_pass_rates():
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    from collections import Counter

    r = layer_pass_rates(10, Counter(structural=2, quality=4), ["structural", "quality", "domain_safety"])
    assert r["structural"] == {"in": 10, "rejected": 2, "pass_rate": 0.8}
    assert r["quality"]["in"] == 8 and r["quality"]["pass_rate"] == 0.5
    assert r["domain_safety"] == {"in": 4, "rejected": 0, "pass_rate": 1.0}


def _ex(query: str, response: dict) -> AgentExample:
    return AgentExample.model_validate({"query": query, "response": response})


def _run(thought: str, tool: str, args: dict) -> dict:
    return {"status": "running", "thought": thought, "tool_use": {"tool_name": tool, "arguments": args}}


def test_validation_layers():
    q = "where is the jwt validation middleware implemented"
    good = _ex(q, _run("The user asks where a concept lives, so semantic search fits best.",
                       "codebase_search", {"query": "jwt validation middleware", "mode": "semantic"}))
    assert check_quality(good) is None and check_domain_safety(good) is None
    assert "parrots" in check_quality(_ex(q, _run(q, "codebase_search", {"query": "jwt"})))
    assert "words" in check_quality(_ex(q, _run("Use the tool.", "codebase_search", {"query": "jwt"})))
    assert "generic" in check_quality(_ex(q, {"status": "complete", "final_answer": "I can help you with that."}))
    rm = _ex("clean up the build dir", _run("Clean the workspace before rebuilding the whole project.", "sandbox_exec",
                                            {"code": "import os; os.system('rm -rf build')"}))
    assert "unsafe" in check_domain_safety(rm)
    nopath = _ex("read the config", _run("The configuration lives in the usual settings file somewhere.",
                                         "file_manager", {"operation": "read", "path": "config"}))
    assert "explicit path" in check_domain_safety(nopath)
    unnamed = _ex("fix the timeout please", _run("The timeout constant is defined in the core module file.",
                                                 "file_manager", {"operation": "read", "path": "src/core.py"}))
    assert "never named" in check_domain_safety(unnamed)
    named = _ex("read src/core.py", _run("The user named the file explicitly so reading it is safe.",
                                         "file_manager", {"operation": "read", "path": "src/core.py"}))
    assert check_domain_safety(named) is None


def test_exclude_none_and_chat_templates():
    ex = _ex("what port does it use", {"status": "complete", "final_answer": "Port 8000 by default, set PORT."})
    dumped = ex.response.model_dump(mode="json", exclude_none=True)
    assert dumped == {"status": "complete", "final_answer": "Port 8000 by default, set PORT."}
    chatml = format_chat("sys", "hi", "{}", "chatml")
    assert chatml.startswith("<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>")
    llama = format_chat("sys", "hi", "{}", "llama3")
    assert llama.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|>")
    assert llama.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n{}<|eot_id|>")


def test_stratified_split_keeps_every_label_in_train_and_test():
    labels = ["a"] * 10 + ["b"] * 4 + ["c"] * 2 + ["d"]
    train, test = stratified_split(labels, 0.2, seed=0)
    assert sorted(train + test) == list(range(len(labels)))
    assert [labels[i] for i in test].count("a") == 2
    assert {labels[i] for i in test} == {"a", "b", "c"} and "d" in {labels[i] for i in train}


def test_typos_are_deterministic_and_change_text():
    t = "please transfer money between my accounts today"
    assert add_typos(t, 1.0, random.Random(1)) == add_typos(t, 1.0, random.Random(1)) != t


def test_taxonomy_sources(tmp_path):
    from conftest import SHARED_DATA

    clinc = SHARED_DATA / "clinc150" / "domains.json"
    if clinc.exists():
        tax = load_taxonomy("clinc150", str(clinc))
        assert len(tax) == 10 and all(len(v) == 15 for v in tax.values())
    assert load_taxonomy("builtin") == BUILTIN_TAXONOMY
    assert load_taxonomy("auto", str(tmp_path / "missing.json")) == BUILTIN_TAXONOMY
    f = tmp_path / "routes.json"
    f.write_text(json.dumps({"legal": ["contract_review"]}))
    assert load_taxonomy("file", str(f)) == {"legal": ["contract_review"]}
    f.write_text(json.dumps({"legal": "contract_review"}))
    with pytest.raises(SynthConfigError, match="routes.json"):
        load_taxonomy("file", str(f))


def test_config_errors_are_one_line(monkeypatch):
    with pytest.raises(SynthConfigError, match="expected one of"):
        build_backend({"backend": "anthropic"})
    monkeypatch.delenv("SYNTH_NO_SUCH_KEY", raising=False)
    monkeypatch.chdir(ROOT / "tests")  # no .env here
    with pytest.raises(SynthConfigError, match="SYNTH_NO_SUCH_KEY") as e:
        build_backend({"backend": "groq", "api_key_env": "SYNTH_NO_SUCH_KEY"})
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- offline end to end

def test_arch_router_offline_end_to_end(tmp_path):
    cfg = synth_cfg("arch_router", n_items=24)
    s = run_synth(cfg, tmp_path)
    for name in ("records.jsonl", "arch_router.jsonl", "summary.json", "rejections.jsonl", "items.jsonl",
                 "requests_cache.jsonl", "dataset"):
        assert (tmp_path / name).exists(), name
    assert not list(tmp_path.glob("*.tmp"))
    records = load_records_jsonl(tmp_path / "records.jsonl")  # the `records` loader reads what we write
    arch = [json.loads(l) for l in (tmp_path / "arch_router.jsonl").read_text().splitlines()]
    assert len(records) == len(arch) == s["records"] > 24 * 0.5
    by_id = {r.id: r for r in records}
    for a in arch:
        r = by_id[a["id"]]
        names = [p["name"] for p in a["routes"]]
        assert r.label == a["target"] and r.task == a["domain"] and r.conversation == a["conversation"]
        assert (a["target"] == "other") == (a["branch"] == "irrelevant")
        assert a["target"] == "other" or a["target"] in names
        assert a["judge_score"] >= cfg["judge"]["threshold"] and a["judge_reasoning"]
        assert a["conversation"][-1]["role"] == "user"
    assert len(by_id) == len(records)
    from datasets import load_from_disk

    assert [r.id for r in dataset_to_records(load_from_disk(str(tmp_path / "dataset")))] == [r.id for r in records]
    assert s["items"]["done"] == 24 and s["branches"]["original"] == s["items"]["kept"]
    assert s["stages"]["requests"]["policy"] >= 5 and s["stages"]["events"]["judged"] >= 24


def test_rerun_on_a_finished_dir_is_a_noop(tmp_path):
    cfg = synth_cfg("arch_router", n_items=10)
    first = run_synth(cfg, tmp_path)
    before = (tmp_path / "records.jsonl").read_text()
    s = run_synth(cfg, tmp_path)
    assert (tmp_path / "records.jsonl").read_text() == before
    # Policies from policies.json, items from the log: nothing new is sent, and the totals
    # (requests, tokens, cost) still cover the first session.
    assert s["requests_sent"] == first["requests_sent"] > 0 and s["stages"]["sessions"] == 2
    assert s["tokens_total"] == first["tokens_total"] and s["cost_usd"] == first["cost_usd"]
    assert s["timing"]["items_this_session"] == 0 and s["timing"]["items_resumed"] == 10
    with pytest.raises(SynthConfigError, match="different synth settings"):
        run_synth({**cfg, "seed": 1}, tmp_path)


def test_agent_tools_offline(tmp_path):
    s = run_synth(synth_cfg("agent_tools", n_items=60), tmp_path)
    rows = [json.loads(l) for l in (tmp_path / "agent_tools.jsonl").read_text().splitlines()]
    train = (tmp_path / "formatted_train.jsonl").read_text().splitlines()
    test = (tmp_path / "formatted_test.jsonl").read_text().splitlines()
    assert len(rows) == s["records"] == len(train) + len(test) and test
    assert all("null" not in json.dumps(r["response"]) for r in rows)  # exclude_none
    assert json.loads(train[0])["text"].startswith("<|im_start|>system")
    assert set(r["label"] for r in rows) <= {"codebase_search", "file_manager", "sandbox_exec", "ask_human", "direct_answer"}
    layers = s["rejections_by_layer"]
    assert layers.get("quality", 0) + layers.get("domain_safety", 0) > 0  # offline defects are caught
    rej = [json.loads(l) for l in (tmp_path / "rejections.jsonl").read_text().splitlines()]
    assert all(r["reason"] for r in rej)
    records = load_records_jsonl(tmp_path / "records.jsonl")
    assert {r.label for r in records} == {r["label"] for r in rows}


def test_scoring_stage_gives_scores_and_costs_for_every_pool_llm(tmp_path):
    cfg = synth_cfg("arch_router", n_items=6, scoring={"enabled": True})
    s = run_synth(cfg, tmp_path)
    names = [l["name"] for l in cfg["scoring"]["llms"]]
    records = load_records_jsonl(tmp_path / "records.jsonl")
    assert records and all(sorted(r.scores) == sorted(names) == sorted(r.costs) for r in records)
    assert all(0 <= v <= 1 for r in records for v in r.scores.values()) and all(r.score_type == "probability" for r in records)
    assert all(v > 0 for r in records for v in r.costs.values())
    from datasets import load_from_disk

    assert dataset_llm_names(load_from_disk(str(tmp_path / "dataset"))) == names
    assert s["scoring_cost_usd"] > 0


def test_scoring_is_shared_between_items_with_the_same_query():
    """Scoring costs 2 x pool-size requests per query: a query another item already scores
    (same text, same domain) reuses it, and the scores do not depend on which item asks first."""
    import asyncio

    from router_lab.synth.backends import LLMClient, RequestCache
    from router_lab.synth.scoring import score_query

    cfg = synth_cfg("agent_tools", scoring={"enabled": True}, offline={"invalid_rate": 0.0})
    n_llms = len(cfg["scoring"]["llms"])
    queries = [("Where is the retry logic?", "Fintech"), ("Where is the retry logic?\n", "Fintech"),
               ("Where is the retry logic?", "Gaming"), ("where is the retry logic?", "Fintech")]

    async def score_all(order):
        client = LLMClient(build_backend(cfg), RequestCache(None), RetryPolicy(2, 0.0, 0.0, 0.0), concurrency=4)
        out = await asyncio.gather(*(score_query(client, cfg["scoring"], cfg["stages"], *queries[i]) for i in order))
        return dict(zip(order, out)), client.stats

    first, stats = asyncio.run(score_all([0, 1, 2, 3]))
    assert stats.requests["answer"] == stats.requests["grade"] == 3 * n_llms  # 3 distinct (text, domain)
    assert stats.shared["scoring"] == 1
    assert first[0] == first[1] and first[0][0] != first[2][0]  # the domain is part of what is scored
    again, _ = asyncio.run(score_all([3, 2, 1, 0]))  # the other item first: the same scores
    assert again == first


def test_cli_writes_run_dir_and_no_secret(tmp_path):
    run_dir = tmp_path / "run"
    secret = "gsk_THIS_IS_A_FAKE_SECRET_42"
    p = subprocess.run(
        [sys.executable, "-m", "router_lab.synth", "synth.n_items=4", "synth.progress=false",
         "synth.taxonomy.source=builtin", "synth.taxonomy.max_domains=2", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "GROQ_API_KEY": secret},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert (run_dir / "records.jsonl").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    assert "records" in p.stdout
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert secret not in f.read_text(errors="ignore"), f
