"""Cost-quality evaluation of any router with utilities (per-LLM quality estimates): sweep the
willingness to pay lambda, route each query to argmax over LLMs of lambda * quality - cost,
and report the cost-quality curve, its non-decreasing convex hull and AIQ (RouterBench).

    python -m router_lab.train +experiment=routerdc_routerbench   # writes cost_quality.{json,png}

``train.report`` calls ``cost_quality_report`` when a test set has costs and the router
utilities; flat metrics: ``<set>/router/aiq``, ``<set>/router/max_quality``, and
``<set>/zero_router/aiq`` (the hull of the single LLMs: what mixing fixed LLMs at random buys).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from router_lab import metrics as M
from router_lab.files import write_atomic


def lambda_grid(costs: np.ndarray, n: int = 41) -> list[float]:
    """0 (always the cheapest) then n log-spaced values from 1e-3 to 1e4 times the spread of
    the LLMs' mean costs: with qualities in [0, 1], that runs from 'cost decides' to 'quality
    decides'."""
    per_llm = np.nanmean(np.asarray(costs, dtype=float), axis=0)
    spread = float(per_llm.max() - per_llm.min()) or float(per_llm.max()) or 1.0
    return [0.0] + [float(v) for v in np.geomspace(1e-3 * spread, 1e4 * spread, n)]


def sweep(out: Mapping[str, np.ndarray], lambdas: Sequence[float] | None = None) -> dict | None:
    """Curve, hull and AIQ of one test set's collected outputs; None without costs, scores
    or utilities."""
    if "costs" not in out or "utilities" not in out or "scores" not in out:
        return None
    scores, costs, util = out["scores"], out["costs"], out["utilities"]
    if scores.ndim != 2 or util.shape != scores.shape or costs.shape != scores.shape:
        return None
    full = ~np.isnan(scores).any(axis=1)
    if not full.any():
        return None
    scores, costs, util = scores[full], costs[full], util[full]
    types = ["probability" if p else "multi_attempt" for p in out["is_probability"][full]]
    lambdas = list(lambdas) if lambdas is not None else lambda_grid(costs)
    curve = M.cost_quality_curve(util, scores, costs, types, lambdas)
    hull_c, hull_q = M.non_decreasing_convex_hull([p["cost"] for p in curve], [p["quality"] for p in curve])
    n = scores.shape[1]
    llms = [{"index": j, "cost": M.mean_cost(np.full(len(scores), j), costs),
             "quality": M.acc_predict(np.full(len(scores), j), scores, types)} for j in range(n)]
    return {
        "curve": curve,
        "hull": {"cost": hull_c.tolist(), "quality": hull_q.tolist()},
        "aiq": M.aiq([p["cost"] for p in curve], [p["quality"] for p in curve]),
        "max_quality": float(max(p["quality"] for p in curve)),
        "llms": llms,
        "zero_router_aiq": M.aiq([p["cost"] for p in llms], [p["quality"] for p in llms]),
    }


def plot(results: Mapping[str, dict], path: str | Path, llm_names: Sequence[str] | None = None) -> Path:
    """One panel per test set: the router's lambda points, its hull, the single LLMs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = results[name]
        ax.scatter([p["cost"] for p in r["curve"]], [p["quality"] for p in r["curve"]], s=10, c="C0",
                   label="router (lambda sweep)")
        ax.plot(r["hull"]["cost"], r["hull"]["quality"], c="C0", lw=1.5, label=f"hull, AIQ {r['aiq']:.3f}")
        for p in r["llms"]:
            ax.scatter([p["cost"]], [p["quality"]], marker="x", c="C3", s=25)
            if llm_names:
                ax.annotate(str(llm_names[p["index"]])[-18:], (p["cost"], p["quality"]), fontsize=6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("mean cost")
        ax.set_ylabel("acc_predict")
        ax.legend(fontsize=6, loc="lower right")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def cost_quality_report(outputs: Mapping[str, Mapping[str, np.ndarray]], output_dir: str | Path,
                        llm_names: Sequence[str] | None = None) -> dict[str, float]:
    """Sweep every test set that has costs; write cost_quality.json and cost_quality.png in
    output_dir; return flat metrics (empty, and nothing written, when no set has costs)."""
    results = {name: r for name, out in outputs.items() if (r := sweep(out)) is not None}
    if not results:
        return {}
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "cost_quality.json", json.dumps({"llm_names": list(llm_names or []), "sets": results},
                                                       indent=2))
    plot(results, out / "cost_quality.png", llm_names)
    flat = {}
    for name, r in results.items():
        flat[f"{name}/router/aiq"] = r["aiq"]
        flat[f"{name}/router/max_quality"] = r["max_quality"]
        flat[f"{name}/zero_router/aiq"] = r["zero_router_aiq"]
    return flat
