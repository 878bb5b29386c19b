"""Added latency of the routing proxy per request, against calling the upstream directly.

    python benchmarks/proxy_overhead.py                          # uses benchmarks/route_latency.py's export
    python benchmarks/proxy_overhead.py router=DIR n=200 threads=2 quantize=int8
    python benchmarks/proxy_overhead.py runtime=onnx quantize=int8     # the encoder in ONNX Runtime

A loopback upstream (``serve.loopback_upstream``, answers at once) and the proxy (the real
``python -m router_lab.serve`` entry point) run as separate processes on 127.0.0.1; a sync
httpx client sends ``n`` sequential non-streaming chat requests (a 3-turn conversation),
interleaved three ways: straight to the upstream, through the proxy with a forced model
(forwarding only), and through the proxy with ``model=auto`` (routing + forwarding).
Reports p50/p95 and the added latency; JSON to outputs/bench/proxy_overhead.json.
(Servers in threads of the client's process measured ~45 ms per loopback request from
GIL hand-offs, hence processes.)
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks._common import REPO, machine  # noqa: E402
from router_lab.api import Router  # noqa: E402

MSGS = [{"role": "user", "content": "I need help with my homework."},
        {"role": "assistant", "content": "Sure, what is it about?"},
        {"role": "user", "content": "Solve 3x + 7 = 22 and explain each step."}]


def timed(client: httpx.Client, url: str, model: str, n: int) -> list[float]:
    body = {"model": model, "messages": MSGS}
    for _ in range(20):
        client.post(url, json=body).raise_for_status()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post(url, json=body)
        out.append(time.perf_counter() - t0)
        r.raise_for_status()
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def process(args: list[str], url: str, timeout: float = 120.0):
    """A server subprocess, up once ``url`` answers; terminated on exit. Its log goes to a
    temporary file: a pipe nobody reads fills up and blocks the server mid-benchmark."""
    log_file = tempfile.TemporaryFile()
    p = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log_file,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def tail() -> str:
        log_file.seek(0)
        return log_file.read().decode(errors="replace")[-2000:]

    try:
        deadline = time.monotonic() + timeout
        while True:
            if p.poll() is not None:
                sys.exit(f"server {args[:3]} exited: {tail()}")
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"server {args[:3]} did not start in {timeout:g}s")
            time.sleep(0.2)
        yield
    finally:
        p.terminate()
        p.wait(timeout=10)


def main() -> None:
    args = dict(a.split("=", 1) for a in sys.argv[1:])
    n = int(args.get("n", 200))
    export = Path(args.get("router", REPO / "outputs" / "bench" / "route_latency" / "export"))
    if not export.exists():
        sys.exit(f"{export} not found: run benchmarks/route_latency.py first or pass router=DIR")
    threads = int(args.get("threads", 2))
    quantize = args.get("quantize", "")
    runtime = args.get("runtime", "torch")
    up_port, proxy_port = free_port(), free_port()
    up, proxy = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{proxy_port}"
    router = Router.load(export)
    route_map = REPO / "outputs" / "bench" / "proxy_route_map.yaml"
    route_map.parent.mkdir(parents=True, exist_ok=True)
    route_map.write_text(yaml.safe_dump({"endpoints": {l: {"model": l, "base_url": up + "/v1"}
                                                       for l in router.llm_names}}))
    forced = router.llm_names[0]
    upstream_cmd = ["-c", "import sys, uvicorn; from router_lab.serve import loopback_upstream; "
                    f"uvicorn.run(loopback_upstream('up'), host='127.0.0.1', port={up_port}, log_level='warning')"]
    proxy_cmd = ["-m", "router_lab.serve", f"router={export}", f"route_map={route_map}", f"port={proxy_port}",
                 f"threads={threads}", f"quantize={quantize}", f"runtime={runtime}"]
    rounds: dict[str, list[float]] = {"direct": [], "proxy_forced": [], "proxy_auto": []}
    with process(upstream_cmd, up + "/docs"), process(proxy_cmd, proxy + "/health"), \
            httpx.Client(timeout=30) as c:
        for _ in range(2):  # interleaved, so load from other users hits all three alike
            rounds["direct"] += timed(c, up + "/v1/chat/completions", forced, n)
            rounds["proxy_forced"] += timed(c, proxy + "/v1/chat/completions", forced, n)
            rounds["proxy_auto"] += timed(c, proxy + "/v1/chat/completions", "auto", n)
    ms = {k: {"p50": 1e3 * float(np.percentile(v, 50)), "p95": 1e3 * float(np.percentile(v, 95))}
          for k, v in rounds.items()}
    res = {"machine": machine(), "n": 2 * n, "proxy_threads": threads, "quantize": quantize or None, "runtime": runtime,
           "router": router.target,
           "encoder": router.spec.name, "ms": ms, "loadavg_1min": os.getloadavg()[0]}
    out = REPO / "outputs" / "bench" / "proxy_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))
    d = ms["direct"]
    print("\n| path | p50 | p95 | added p50 |\n|---|---|---|---|")
    for k, label in (("direct", "client -> upstream"), ("proxy_forced", "client -> proxy -> upstream (model forced)"),
                     ("proxy_auto", "client -> proxy (routes) -> upstream")):
        added = "" if k == "direct" else f"+{ms[k]['p50'] - d['p50']:.1f} ms"
        print(f"| {label} | {ms[k]['p50']:.1f} ms | {ms[k]['p95']:.1f} ms | {added} |")


if __name__ == "__main__":
    main()
