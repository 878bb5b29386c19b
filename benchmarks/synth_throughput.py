"""Generator throughput against the loopback chat-completions server (200 ms per reply).

    python benchmarks/synth_throughput.py [--items-c1 12] [--items-c16 96] [--latency 0.2]

Arch-Router recipe through the real groq SDK + instructor: records/s at concurrency 1 vs 16,
then concurrency 16 with 10% of requests answered 429 (retry-after 0.1 s) or 500 on their
first attempt; "nothing lost" = the faulty run's records.jsonl equals the fault-free run's.
Run dirs under outputs/synth/bench/throughput/.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router_lab import ROOT  # noqa: E402
from router_lab.synth.run import run_synth  # noqa: E402
from tests.synth_fixtures.configs import loopback_updates, synth_cfg  # noqa: E402
from tests.synth_fixtures.loopback import LoopbackLLM, pipeline_responder  # noqa: E402


def one(name: str, n: int, concurrency: int, latency: float, fault_rate: float) -> dict:
    run_dir = ROOT / "outputs" / "synth" / "bench" / "throughput" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    with LoopbackLLM(latency_s=latency, fault_rate=fault_rate, responder=pipeline_responder) as srv:
        cfg = synth_cfg("arch_router", n_items=n, concurrency=concurrency,
                        **loopback_updates("groq", srv, timeout_s=10.0))
        cfg["retry"] = {"max_attempts": 6, "base_delay_s": 0.5, "max_delay_s": 8.0, "jitter": 0.5}
        t0 = time.perf_counter()
        s = run_synth(cfg, run_dir)
        wall = time.perf_counter() - t0
        faults = {k: v for k, v in srv.counts.items() if k != "ok"}
    return {"name": name, "items": n, "concurrency": concurrency, "records": s["records"], "wall_s": round(wall, 2),
            "records_per_s": round(s["records"] / wall, 2), "requests": sum(s["stages"]["requests"].values()),
            "retried": s["stages"]["retried"], "faults_served": faults, "failed": s["stages"]["failed"],
            "run_dir": str(run_dir.relative_to(ROOT))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items-c1", type=int, default=12)
    ap.add_argument("--items-c16", type=int, default=96)
    ap.add_argument("--latency", type=float, default=0.2)
    a = ap.parse_args()
    os.environ.setdefault("SYNTH_TEST_API_KEY", "sk-bench-not-a-real-key")
    rows = [one("c1", a.items_c1, 1, a.latency, 0.0),
            one("c16", a.items_c16, 16, a.latency, 0.0),
            one("c16_faults10", a.items_c16, 16, a.latency, 0.1)]
    base = ROOT / "outputs" / "synth" / "bench" / "throughput"
    same = (base / "c16" / "records.jsonl").read_text() == (base / "c16_faults10" / "records.jsonl").read_text()
    print("| run | items | concurrency | records | wall s | records/s | requests | faults served | retried | failed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['items']} | {r['concurrency']} | {r['records']} | {r['wall_s']} | {r['records_per_s']} "
              f"| {r['requests']} | {r['faults_served'] or '-'} | {r['retried'] or '-'} | {r['failed'] or '-'} |")
    print(f"\nspeed-up c16 / c1: {rows[1]['records_per_s'] / rows[0]['records_per_s']:.1f}x")
    print(f"10% faults: records identical to the fault-free run (nothing lost): {same}")
    (base / "results.json").write_text(json.dumps({"rows": rows, "nothing_lost": same}, indent=2))


if __name__ == "__main__":
    main()
