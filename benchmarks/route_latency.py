"""Routing latency and throughput of an exported MiniLM router on CPU, against a bare
encoder forward pass on the same inputs.

    python benchmarks/route_latency.py                 # trains a small frozen-MiniLM classifier first
    python benchmarks/route_latency.py router=DIR threads=2 n=200

Measures, after warm-up: single-query ``Router.route`` latency p50/p95 over ``n`` short
queries (the synthetic benchmark's test queries), ``route_batch`` throughput in batches of
64, and the same for a bare ``QueryEncoder`` forward (tokenise + backbone + pooling, under
``torch.inference_mode``): the router's overhead is the ratio minus 1. Prints a markdown
section for benchmarks/RESULTS.md; raw numbers go to outputs/bench/route_latency.json.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks._common import REPO, machine, train_run  # noqa: E402
from router_lab.api import Router  # noqa: E402
from router_lab.data.sources import load_synthetic  # noqa: E402
from router_lab.export import export_router  # noqa: E402

OUT = REPO / "outputs" / "bench" / "route_latency"


def percentile(xs, q):
    return float(np.percentile(np.asarray(xs), q))


def time_pair(fa, fb, items, warmup=20):
    """Wall and CPU seconds of fa(x) and fb(x), interleaved per item so load from other
    processes on the machine hits both alike. CPU time (the process's, all threads) is what
    the call costs on a dedicated core; wall time includes waiting for a shared one."""
    for x in items[:warmup]:
        fa(x), fb(x)
    out = {"a": [], "b": [], "a_cpu": [], "b_cpu": []}
    for x in items:
        for key, fn in (("a", fa), ("b", fb)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(x)
            out[key].append(time.perf_counter() - t0)
            out[key + "_cpu"].append(time.process_time() - c0)
    return out


def throughput(fn, items, batch=64, rounds=3):
    """Best of ``rounds`` passes: (wall q/s, q per CPU-second)."""
    fn(items[:batch])
    best, best_cpu = 0.0, 0.0
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(items), batch):
            fn(items[i:i + batch])
        best = max(best, len(items) / (time.perf_counter() - t0))
        best_cpu = max(best_cpu, len(items) / (time.process_time() - c0))
    return best, best_cpu


def main() -> None:
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    threads = int(args.get("threads", 2))
    n = int(args.get("n", 200))
    torch.set_num_threads(threads)
    if "router" in args:
        export = Path(args["router"])
    else:
        run = OUT / "run"
        if not (run / "checkpoints" / "best.ckpt").exists():
            train_run(["data.train.n_train=600", "data.val.n_val=100", "data.test.test.n_test=200",
                       "trainer.max_epochs=3", "logger=none", "task_name=bench_route"], run)
        export = OUT / "export"
        if not export.exists():
            export_router(Router.load(run), export)
    router = Router.load(export)
    # fine-tune-mode routers carry their own encoder; frozen ones embed with the exported backbone
    enc = router.query_encoder or router.model.encoder
    tok = router.tokenizer
    queries = [r.query for r in load_synthetic("test", n_train=300, n_val=50, n_test=max(n, 640))][: max(n, 640)]
    single = queries[:n]
    ntok = [len(tok(q)["input_ids"]) for q in single]

    @torch.inference_mode()
    def bare(texts):
        b = tok(texts if isinstance(texts, list) else [texts], padding=True, truncation=True,
                max_length=router.spec.max_length, return_tensors="pt")
        return enc(b["input_ids"], b["attention_mask"])

    t = time_pair(router.route, bare, single)
    route_s, bare_s = t["a"], t["b"]
    route_qps, route_cpu_qps = throughput(router.route_batch, queries)
    bare_qps, bare_cpu_qps = throughput(bare, queries)

    res = {
        "machine": machine(), "threads": threads, "router": router.target, "encoder": router.spec.name,
        "export": str(export), "n": n, "tokens_mean": statistics.mean(ntok),
        "route_p50_ms": 1e3 * percentile(route_s, 50), "route_p95_ms": 1e3 * percentile(route_s, 95),
        "bare_p50_ms": 1e3 * percentile(bare_s, 50), "bare_p95_ms": 1e3 * percentile(bare_s, 95),
        "route_cpu_p50_ms": 1e3 * percentile(t["a_cpu"], 50), "route_cpu_p95_ms": 1e3 * percentile(t["a_cpu"], 95),
        "bare_cpu_p50_ms": 1e3 * percentile(t["b_cpu"], 50),
        "route_batch64_qps": route_qps, "bare_batch64_qps": bare_qps,
        "route_batch64_q_per_cpu_s": route_cpu_qps, "bare_batch64_q_per_cpu_s": bare_cpu_qps,
        "loadavg_1min": os.getloadavg()[0],
    }
    res["single_overhead"] = res["route_p50_ms"] / res["bare_p50_ms"] - 1
    res["batch_overhead"] = bare_qps / route_qps - 1
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT.parent / "route_latency.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    print(f"""
| measure ({res['encoder']} {res['router'].rsplit('.', 1)[-1]}, {threads} threads) | router | bare encoder | overhead |
|---|---|---|---|
| single query p50 | {res['route_p50_ms']:.1f} ms | {res['bare_p50_ms']:.1f} ms | {100 * res['single_overhead']:+.1f}% |
| single query p95 | {res['route_p95_ms']:.1f} ms | {res['bare_p95_ms']:.1f} ms | |
| single query CPU time p50 (p95) | {res['route_cpu_p50_ms']:.1f} ({res['route_cpu_p95_ms']:.1f}) ms | {res['bare_cpu_p50_ms']:.1f} ms | {100 * (res['route_cpu_p50_ms'] / res['bare_cpu_p50_ms'] - 1):+.1f}% |
| batch of 64, throughput | {route_qps:.0f} q/s | {bare_qps:.0f} q/s | {100 * res['batch_overhead']:+.1f}% |
| batch of 64, queries per CPU-second | {route_cpu_qps:.0f} | {bare_cpu_qps:.0f} | |
""")


if __name__ == "__main__":
    main()
