"""A run killed midway (SIGKILL) and restarted ends with exactly the records of an
uninterrupted run: same ids, same content, no duplicates -- also against a flaky server
(empty choices, non-JSON bodies, long and HTTP-date Retry-After, 500s, a policy reply lost
for good), with the summary's request and token totals equal to what the server saw over
both sessions."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from router_lab import ROOT
from synth_fixtures.loopback import LoopbackLLM, pipeline_responder
from test_synth_loopback import FAULT_MIX, lost_policy_text

CHILD = [sys.executable, "-m", "tests.synth_fixtures.run_child"]
CONCURRENCY = 4  # run_child's synth.concurrency


def _run(run_dir: Path, backend: str, n: int, latency: float, base_url: str = "") -> subprocess.Popen:
    env = {**os.environ, "SYNTH_TEST_API_KEY": "sk-test-not-a-real-key", "TQDM_DISABLE": "1"}
    return subprocess.Popen([*CHILD, str(run_dir), backend, str(n), str(latency), *([base_url] if base_url else [])],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _lines(p: Path) -> int:
    return len(p.read_text().splitlines()) if p.exists() else 0


def _sent(run_dir: Path) -> int:
    p = run_dir / "requests_log.jsonl"
    return sum('"e": "sent"' in l for l in p.read_text().splitlines()) if p.exists() else 0


def _wait(cond, timeout: float = 60.0) -> bool:
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_killed_run_resumes_to_the_uninterrupted_result_against_a_flaky_server(tmp_path):
    n, latency, backend = 30, 0.02, "groq"
    _, lose = lost_policy_text()
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "killed"
    with LoopbackLLM(responder=pipeline_responder, keyed_faults=FAULT_MIX, lose=lose, latency_s=latency) as ref_srv, \
            LoopbackLLM(responder=pipeline_responder, keyed_faults=FAULT_MIX, lose=lose, latency_s=latency) as srv:
        ref = _run(ref_dir, backend, n, 0.0, ref_srv.groq_base_url)  # runs alongside the one we kill
        child = _run(dir_, backend, n, 0.0, srv.groq_base_url)
        assert _wait(lambda: _lines(dir_ / "items.jsonl") >= 8 or child.poll() is not None)
        # Kill with every request slot waiting on the server: what the client logged as sent is
        # then exactly what the server received.
        srv.hold()
        # (held, not just in flight: a request already past the gate would still be answered and
        # its tokens counted after the kill)
        assert _wait(lambda: srv.held == CONCURRENCY and _sent(dir_) == srv.total or child.poll() is not None)
        assert child.poll() is None, "the run finished before it could be killed: make it longer"
        child.send_signal(signal.SIGKILL)
        child.wait()
        srv.release(drop=True)
        done_at_kill = _lines(dir_ / "items.jsonl")
        assert 8 <= done_at_kill < n and not (dir_ / "records.jsonl").exists()
        cache_at_kill = _lines(dir_ / "requests_cache.jsonl")

        resumed = _run(dir_, backend, n, 0.0, srv.groq_base_url)
        assert resumed.wait(timeout=120) == 0, resumed.stderr.read()[-2000:]
        assert ref.wait(timeout=120) == 0, ref.stderr.read()[-2000:]
        seen = dict(srv.counts)
        total, tokens, ref_total, ref_tokens = srv.total, list(srv.tokens), ref_srv.total, list(ref_srv.tokens)

    assert all(seen.get(k) for k in FAULT_MIX), seen
    for name in ("records.jsonl", "arch_router.jsonl", "rejections.jsonl", "policies.json"):
        assert (dir_ / name).read_text() == (ref_dir / name).read_text(), name
    assert '"stage": "policy"' in (dir_ / "rejections.jsonl").read_text()  # the lost policy, recorded once
    items = [json.loads(l)["item"] for l in (dir_ / "items.jsonl").read_text().splitlines()]
    assert sorted(items) == list(range(n))  # every item once: nothing redone, nothing lost
    s = json.loads((dir_ / "summary.json").read_text())
    assert s["timing"]["items_resumed"] == done_at_kill and s["stages"]["sessions"] == 2
    assert sum(s["stages"]["cached"].values()) >= min(cache_at_kill, 1)  # replayed, not re-asked
    # Both sessions' requests and tokens, as the server counted them (held ones included).
    assert s["requests_sent"] == total and s["tokens_total"] == {"prompt": tokens[0], "completion": tokens[1]}
    r = json.loads((ref_dir / "summary.json").read_text())
    assert r["requests_sent"] == ref_total and r["tokens_total"] == {"prompt": ref_tokens[0], "completion": ref_tokens[1]}
    ids = [json.loads(l)["id"] for l in (dir_ / "records.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) > 0
