"""Routing latency and throughput of an exported MiniLM router on CPU, against a bare
encoder forward pass on the same inputs.

    python benchmarks/route_latency.py                 # trains a small frozen-MiniLM classifier first
    python benchmarks/route_latency.py router=DIR threads=2 n=200 variants=float32,int8,onnx,onnx_int8

Measures, after warm-up, for each variant of the same router -- ``float32`` and ``int8``
(torch; ``Router.load(..., quantize="int8")``), ``onnx`` and ``onnx_int8`` (the encoder in
ONNX Runtime: ``runtime="onnx"``) -- single-query ``Router.route`` latency p50/p95 over
``n`` short queries (the synthetic benchmark's test queries), ``route_batch`` throughput in
batches of 64, and the same for a bare forward of that variant's encoder (tokenise +
backbone + pooling: the torch ``QueryEncoder`` under ``torch.inference_mode``, or the ONNX
Runtime session; batches split by length as route_batch does): the router's overhead is the
ratio minus 1. Also the routing quality of each (acc_predict on the test queries) and how
often each picks the float32 router's LLM. Prints a
markdown table for benchmarks/RESULTS.md; raw numbers go to outputs/bench/route_latency.json.
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
from router_lab.data.loaders.synthetic import load_synthetic  # noqa: E402
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


def throughput(fn, items, batch=64, rounds=5):
    """Median over ``rounds`` passes over ``items`` in batches: (wall q/s, q per CPU-second)."""
    fn(items[:batch])
    wall, cpu = [], []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(items), batch):
            fn(items[i:i + batch])
        wall.append(len(items) / (time.perf_counter() - t0))
        cpu.append(len(items) / (time.process_time() - c0))
    return statistics.median(wall), statistics.median(cpu)


def measure(router: Router, single: list[str], queries: list[str]) -> dict:
    enc = router.embed  # the variant's encoder: torch (own or the frozen router's backbone) or ONNX Runtime
    tok = router.tokenizer

    @torch.inference_mode()
    def bare(texts):
        texts = texts if isinstance(texts, list) else [texts]
        ids = tok(texts, truncation=True, max_length=router.spec.max_length)["input_ids"]
        ids.sort(key=len)
        for s in range(0, len(ids), router.micro_batch):
            b = tok.pad({"input_ids": ids[s:s + router.micro_batch]}, return_tensors="pt")
            enc(b["input_ids"], b["attention_mask"])

    t = time_pair(router.route, bare, single)
    route_qps, route_cpu_qps = throughput(router.route_batch, queries)
    bare_qps, bare_cpu_qps = throughput(bare, queries)
    res = {
        "route_p50_ms": 1e3 * percentile(t["a"], 50), "route_p95_ms": 1e3 * percentile(t["a"], 95),
        "bare_p50_ms": 1e3 * percentile(t["b"], 50), "bare_p95_ms": 1e3 * percentile(t["b"], 95),
        "route_cpu_p50_ms": 1e3 * percentile(t["a_cpu"], 50), "route_cpu_p95_ms": 1e3 * percentile(t["a_cpu"], 95),
        "bare_cpu_p50_ms": 1e3 * percentile(t["b_cpu"], 50),
        "route_batch64_qps": route_qps, "bare_batch64_qps": bare_qps,
        "route_batch64_q_per_cpu_s": route_cpu_qps, "bare_batch64_q_per_cpu_s": bare_cpu_qps,
    }
    res["single_overhead"] = res["route_p50_ms"] / res["bare_p50_ms"] - 1
    res["batch_overhead"] = bare_qps / route_qps - 1
    return res


def main() -> None:
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    threads = int(args.get("threads", 2))
    n = int(args.get("n", 200))
    variants = {"float32": ("torch", None), "int8": ("torch", "int8"), "onnx": ("onnx", None),
                "onnx_int8": ("onnx", "int8")}
    if "quantize" in args:  # the older spelling: quantize=none,int8 (torch only)
        args.setdefault("variants", ",".join("float32" if m in ("none", "") else m for m in args["quantize"].split(",")))
    modes = args.get("variants", ",".join(variants)).split(",")
    unknown = [m for m in modes if m not in variants]
    if unknown:
        sys.exit(f"variants: unknown {unknown}; expected some of {list(variants)}")
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
    records = load_synthetic("test", n_train=300, n_val=50, n_test=max(n, 640))[: max(n, 640)]
    queries = [r.query for r in records]
    single = queries[:n]
    res = {"machine": machine(), "threads": threads, "export": str(export), "n": n, "variants": {}}
    chosen = {}
    for name in modes:
        runtime, quantize = variants[name]
        router = Router.load(export, quantize=quantize, runtime=runtime)
        res.update(router=router.target, encoder=router.spec.name)
        res["tokens_mean"] = statistics.mean(len(router.tokenizer(q)["input_ids"]) for q in single)
        r = measure(router, single, queries)
        picks = [router.llm_names.index(d.llm) for d in router.route_batch(queries)]
        chosen[name] = picks
        r["acc_predict"] = 100 * statistics.mean(rec.scores[k] for rec, k in
                                                 zip(records, (router.llm_names[i] for i in picks)))
        res["variants"][name] = r
    if "float32" in chosen:
        for name, picks in chosen.items():
            res["variants"][name]["agreement_with_float32"] = 100 * statistics.mean(
                a == b for a, b in zip(picks, chosen["float32"]))
    res["loadavg_1min"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT.parent / "route_latency.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    print(f"\n{res['encoder']} {res['router'].rsplit('.', 1)[-1]}, {threads} threads, "
          f"{res['tokens_mean']:.1f} tokens per query on average, load average {res['loadavg_1min']:.2f}\n")
    print("| measure | " + " | ".join(f"router ({k}) | bare encoder ({k})" for k in res["variants"]) + " |")
    print("|---|" + "---|---|" * len(res["variants"]))
    rows = [("single query p50", "route_p50_ms", "bare_p50_ms", "{:.1f} ms"),
            ("single query p95", "route_p95_ms", "bare_p95_ms", "{:.1f} ms"),
            ("single query CPU time p50", "route_cpu_p50_ms", "bare_cpu_p50_ms", "{:.1f} ms"),
            ("batches of 64, throughput", "route_batch64_qps", "bare_batch64_qps", "{:.0f} q/s"),
            ("batches of 64, queries per CPU-second", "route_batch64_q_per_cpu_s", "bare_batch64_q_per_cpu_s", "{:.0f}")]
    for label, a, b, fmt in rows:
        print(f"| {label} | " + " | ".join(f"{fmt.format(v[a])} | {fmt.format(v[b])}" for v in res["variants"].values()) + " |")
    print("| overhead, single p50 / batch | " + " | ".join(
        f"{100 * v['single_overhead']:+.1f}% / {100 * v['batch_overhead']:+.1f}% | " for v in res["variants"].values()) + " |")
    print("| acc_predict on these queries | " + " | ".join(
        f"{v['acc_predict']:.2f} (agrees with float32 on {v.get('agreement_with_float32', float('nan')):.1f}%) | "
        for v in res["variants"].values()) + " |")


if __name__ == "__main__":
    main()
