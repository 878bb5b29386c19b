"""A run killed midway (SIGKILL) and restarted ends with exactly the records of an
uninterrupted run: same ids, same content, no duplicates."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from router_lab import ROOT

CHILD = [sys.executable, "-m", "tests.synth_fixtures.run_child"]


def _run(run_dir: Path, backend: str, n: int, latency: float) -> subprocess.Popen:
    env = {**os.environ, "SYNTH_TEST_API_KEY": "sk-test-not-a-real-key", "TQDM_DISABLE": "1"}
    return subprocess.Popen([*CHILD, str(run_dir), backend, str(n), str(latency)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _lines(p: Path) -> int:
    return len(p.read_text().splitlines()) if p.exists() else 0


@pytest.mark.parametrize("backend", ["groq"])
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, backend):
    n, latency = 30, 0.05
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "killed"
    ref = _run(ref_dir, backend, n, latency)  # runs alongside the one we kill
    child = _run(dir_, backend, n, latency)
    deadline = time.time() + 60
    while _lines(dir_ / "items.jsonl") < 8 and child.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, "the run finished before it could be killed: make it longer"
    child.send_signal(signal.SIGKILL)
    child.wait()
    done_at_kill = _lines(dir_ / "items.jsonl")
    assert 8 <= done_at_kill < n and not (dir_ / "records.jsonl").exists()
    cache_at_kill = _lines(dir_ / "requests_cache.jsonl")

    resumed = _run(dir_, backend, n, latency)
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read()[-2000:]
    assert ref.wait(timeout=120) == 0, ref.stderr.read()[-2000:]

    for name in ("records.jsonl", "arch_router.jsonl", "rejections.jsonl"):
        assert (dir_ / name).read_text() == (ref_dir / name).read_text(), name
    items = [json.loads(l)["item"] for l in (dir_ / "items.jsonl").read_text().splitlines()]
    assert sorted(items) == list(range(n))  # every item once: nothing redone, nothing lost
    s = json.loads((dir_ / "summary.json").read_text())
    assert s["timing"]["items_resumed"] == done_at_kill
    assert sum(s["stages"]["cached"].values()) >= min(cache_at_kill, 1)  # policies replayed, not re-asked
    ids = [json.loads(l)["id"] for l in (dir_ / "records.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) > 0
