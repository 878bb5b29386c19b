"""A generator run in its own process, for the kill/resume test and the benchmarks.

    python -m tests.synth_fixtures.run_child RUN_DIR BACKEND N_ITEMS LATENCY_S [BASE_URL]

With BASE_URL the child talks to a loopback server the caller runs (so the caller sees
every request, across a kill and a resume); without it, to its own flaky one.
"""
from __future__ import annotations

import os
import sys

from router_lab.synth.run import run_synth
from .configs import loopback_updates, synth_cfg
from .loopback import LoopbackLLM, pipeline_responder


def main() -> None:
    run_dir, backend, n_items, latency = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    cfg = synth_cfg("arch_router", n_items=n_items, concurrency=4)
    if backend == "offline":
        cfg["offline"] = {**cfg["offline"], "latency_s": latency}
        run_synth(cfg, run_dir)
        return
    os.environ.setdefault("SYNTH_TEST_API_KEY", "sk-test-not-a-real-key")
    if len(sys.argv) > 5:
        run_synth({**cfg, **loopback_updates(backend, sys.argv[5], timeout_s=5.0)}, run_dir)
        return
    with LoopbackLLM(latency_s=latency, fault_rate=0.1, responder=pipeline_responder) as srv:
        run_synth({**cfg, **loopback_updates(backend, srv, timeout_s=5.0)}, run_dir)


if __name__ == "__main__":
    main()
