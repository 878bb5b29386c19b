"""Small requests' latency through the routing proxy while maximal-size requests are routed,
against an idle proxy (target: p50 within 2x).

    python benchmarks/proxy_big_request.py                    # uses benchmarks/route_latency.py's export
    python benchmarks/proxy_big_request.py router=DIR n=100 max_body_mb=4 threads=2 route_workers=2

The real ``python -m router_lab.serve`` (default ``max_body_mb``) and a loopback upstream
(answers at once, echoing at most 200 characters) run as processes on 127.0.0.1. Rounds,
interleaved twice: ``idle`` sends ``n`` sequential small ``model=auto`` requests (a 3-turn
conversation); ``loaded`` sends the same while another client keeps sending requests whose
one user message fills the body limit (a few MiB of words, so the router must truncate it
to the encoder's window); ``loaded_normal_long`` the same with ~2 KB messages that just fill
the window (the most a normal request costs the router). A body one byte over the limit
must get 413. Prints p50/p95 of the small requests in each round and their ratios, the
big requests' own latency, and (in this process) the big conversation's routing time with
the window cut vs tokenising all of it; JSON to outputs/bench/proxy_big_request.json.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks._common import REPO, machine  # noqa: E402
from benchmarks.proxy_overhead import MSGS, free_port, process  # noqa: E402
from router_lab.api import Router  # noqa: E402
from router_lab.serve import DEFAULT_MAX_BODY_MB  # noqa: E402

WORDS = ("please solve this equation and explain every step of the derivation in detail for my "
         "homework assignment about linear algebra matrices vectors eigenvalues").split()


def big_body(max_bytes: int) -> bytes:
    """A chat request whose JSON is as close to ``max_bytes`` as whole words allow."""
    head = b'{"model": "auto", "messages": [{"role": "user", "content": "'
    tail = b'"}]}'
    room = max_bytes - len(head) - len(tail)
    words, size, i = [], 0, 0
    while True:
        w = (WORDS[i % len(WORDS)] + " ").encode()
        if size + len(w) > room:
            break
        words.append(w)
        size += len(w)
        i += 1
    body = head + b"".join(words) + tail
    assert len(body) <= max_bytes
    return body


FLOOD = """
import sys, time, httpx
url, path = sys.argv[1], sys.argv[2]
body = open(path, "rb").read()
with httpx.Client(timeout=120) as c:
    while True:
        t0 = time.perf_counter()
        r = c.post(url, content=body, headers={"content-type": "application/json"})
        r.raise_for_status()
        assert r.headers["x-router-llm"]
        print(time.perf_counter() - t0, flush=True)
"""


@contextlib.contextmanager
def flood(url: str, body: bytes):
    """Another process posting ``body`` back to back; yields the list its latencies go into
    (filled when it stops)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f, tempfile.TemporaryFile() as out:
        f.write(body)
        f.flush()
        p = subprocess.Popen([sys.executable, "-c", FLOOD, url, f.name], stdout=out, stderr=subprocess.DEVNULL)
        sink: list[float] = []
        try:
            yield sink
        finally:
            p.terminate()
            p.wait(timeout=30)
            out.seek(0)
            sink += [float(x) for x in out.read().decode().split()]
        if not sink:
            sys.exit("the flooding client routed nothing")


def small_latencies(client: httpx.Client, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post(url, json={"model": "auto", "messages": MSGS})
        out.append(time.perf_counter() - t0)
        r.raise_for_status()
    return out


def main() -> None:
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    n = int(args.get("n", 100))
    threads = int(args.get("threads", 2))
    max_mb = float(args.get("max_body_mb", DEFAULT_MAX_BODY_MB))
    route_workers = int(args.get("route_workers", 2))
    torch.set_num_threads(threads)  # the in-process comparison runs like the proxy
    export = Path(args.get("router", REPO / "outputs" / "bench" / "route_latency" / "export"))
    if not export.exists():
        sys.exit(f"{export} not found: run benchmarks/route_latency.py first or pass router=DIR")
    router = Router.load(export)
    up_port, proxy_port = free_port(), free_port()
    up, proxy = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{proxy_port}"
    route_map = REPO / "outputs" / "bench" / "proxy_big_route_map.yaml"
    route_map.parent.mkdir(parents=True, exist_ok=True)
    route_map.write_text(yaml.safe_dump({"endpoints": {l: {"model": l, "base_url": up + "/v1"}
                                                       for l in router.llm_names}}))
    upstream_cmd = ["-c", "import uvicorn; from router_lab.serve import loopback_upstream; "
                    f"uvicorn.run(loopback_upstream('up', max_echo=200), host='127.0.0.1', port={up_port}, "
                    "log_level='warning')"]
    proxy_cmd = ["-m", "router_lab.serve", f"router={export}", f"route_map={route_map}", f"port={proxy_port}",
                 f"threads={threads}", f"max_body_mb={max_mb:g}", f"route_workers={route_workers}"]
    max_bytes = int(max_mb * 2 ** 20)
    body = big_body(max_bytes)
    url = proxy + "/v1/chat/completions"
    # A normal request that fills the encoder's window (~2 KB of words): what a big one should cost.
    long_body = big_body(2048 + 64)
    rounds: dict[str, list[float]] = {"idle": [], "loaded": [], "loaded_normal_long": []}
    big: list[float] = []
    normal: list[float] = []
    with process(upstream_cmd, up + "/docs"), process(proxy_cmd, proxy + "/health"), \
            httpx.Client(timeout=120) as c:
        small_latencies(c, url, 20)  # warm-up
        over = c.post(url, content=body + b" " * (max_bytes + 1 - len(body)),
                      headers={"content-type": "application/json"})
        for _ in range(2):
            rounds["idle"] += small_latencies(c, url, n)
            for name, load in (("loaded", body), ("loaded_normal_long", long_body)):
                # The flooding client is its own process: in a thread of this one it would
                # share the GIL with the client being measured.
                with flood(url, load) as sink:
                    time.sleep(0.5)  # the first one is in
                    rounds[name] += small_latencies(c, url, n)
                (big if load is body else normal).extend(sink)
    ms = {k: {"p50": 1e3 * float(np.percentile(v, 50)), "p95": 1e3 * float(np.percentile(v, 95))}
          for k, v in rounds.items()}
    # In this process: routing the big conversation with the window cut vs tokenising all of it.
    msgs = json.loads(body)["messages"]
    router.route(msgs)
    t0 = time.perf_counter()
    router.route(msgs)
    cut_s = time.perf_counter() - t0
    uncut_s = None
    if args.get("compare_uncut", "1") == "1":
        router.WINDOW_CHARS_PER_TOKEN = 10 ** 12  # no cut: the whole text goes to the tokeniser
        t0 = time.perf_counter()
        router.route(msgs)
        uncut_s = time.perf_counter() - t0
    res = {"machine": machine(), "n_small": 2 * n, "proxy_threads": threads, "max_body_mb": max_mb,
           "route_workers": route_workers,
           "big_request_bytes": len(body), "big_requests_routed": len(big),
           "big_ms_p50": 1e3 * float(np.median(big)), "normal_long_ms_p50": 1e3 * float(np.median(normal)),
           "route_big_in_process_ms": {"window_cut": 1e3 * cut_s, "uncut": uncut_s and 1e3 * uncut_s},
           "oversized_status": over.status_code,
           "router": router.target, "encoder": router.spec.name, "max_length": router.spec.max_length,
           "ms": ms, "p50_ratio_loaded_over_idle": ms["loaded"]["p50"] / ms["idle"]["p50"],
           "p50_ratio_loaded_over_loaded_normal_long": ms["loaded"]["p50"] / ms["loaded_normal_long"]["p50"],
           "loadavg_1min": os.getloadavg()[0]}
    out = REPO / "outputs" / "bench" / "proxy_big_request.json"
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    print("\n| small requests | p50 | p95 |\n|---|---|---|")
    for k in ("idle", "loaded", "loaded_normal_long"):
        print(f"| {k} | {ms[k]['p50']:.1f} ms | {ms[k]['p95']:.1f} ms |")
    print(f"\nloaded/idle p50: {res['p50_ratio_loaded_over_idle']:.2f}x (target <= 2x); loaded by max-size / "
          f"loaded by normal window-filling requests: {res['p50_ratio_loaded_over_loaded_normal_long']:.2f}x; "
          f"{len(big)} requests of {len(body) / 2 ** 20:.2f} MiB routed, p50 {res['big_ms_p50']:.0f} ms each "
          f"(normal window-filling: {res['normal_long_ms_p50']:.0f} ms); one byte over the limit -> {over.status_code}; "
          f"routing the max-size conversation in-process: {1e3 * cut_s:.0f} ms cut to the window"
          + (f", {1e3 * uncut_s:.0f} ms tokenising all of it" if uncut_s else ""))


if __name__ == "__main__":
    main()
