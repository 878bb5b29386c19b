"""Cost-quality evaluation of any router with utilities (per-LLM quality estimates): sweep the
willingness to pay lambda, route each query to argmax over LLMs of lambda * quality - cost,
and report the cost-quality curve, its non-decreasing convex hull and AIQ (RouterBench).

    python -m router_lab.train +experiment=routerdc_routerbench   # writes cost_quality.{json,png}

``results.report_run`` calls ``cost_quality_report`` when a test set has costs and the router
utilities; flat metrics: ``<set>/router/aiq``, ``<set>/router/max_quality``,
``<set>/zero_router/aiq`` (the hull of the single LLMs: what mixing fixed LLMs at random buys)
and ``<set>/router/cost_to_match_best_single`` (absent when the router never matches the
best single LLM). Both AIQs are over ONE cost range: from the
cheapest to the dearest single LLM's mean cost on that set. Routing is
``router_lab.policy.choose_llm`` on ``router_lab.policy.lambda_grid``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from router_lab import metrics as M
from router_lab.files import write_json_atomic
from router_lab.policy import lambda_grid


def sweep(out: Mapping[str, np.ndarray], lambdas: Sequence[float] | None = None) -> dict | None:
    """Curve, hull and AIQ of one test set's collected outputs; None without costs, scores
    or utilities. Router and single-LLM AIQ are both computed over ``cost_range``: from the
    cheapest to the dearest single LLM's mean cost on this set."""
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
    rc, rq = [p["cost"] for p in curve], [p["quality"] for p in curve]
    hull_c, hull_q = M.non_decreasing_convex_hull(rc, rq)
    n = scores.shape[1]
    llms = [{"index": j, "cost": M.mean_cost(np.full(len(scores), j), costs),
             "quality": M.acc_predict(np.full(len(scores), j), scores, types)} for j in range(n)]
    lc, lq = [p["cost"] for p in llms], [p["quality"] for p in llms]
    cost_range = (min(lc), max(lc))
    best = max(llms, key=lambda p: (p["quality"], -p["cost"]))
    single_hull_c, single_hull_q = M.non_decreasing_convex_hull(lc, lq)
    return {
        "curve": curve,
        "hull": {"cost": hull_c.tolist(), "quality": hull_q.tolist()},
        "cost_range": list(cost_range),
        "aiq": M.aiq(rc, rq, cost_range),
        "max_quality": float(max(rq)),
        "llms": llms,
        "single_llm_hull": {"cost": single_hull_c.tolist(), "quality": single_hull_q.tolist()},
        "zero_router_aiq": M.aiq(lc, lq, cost_range),
        "best_single": {"index": best["index"], "cost": best["cost"], "quality": best["quality"]},
        # The least mean cost at which the router's hull matches the best single LLM's quality.
        "cost_to_match_best_single": M.cost_to_reach(rc, rq, best["quality"]),
        # How far the router's hull is above (>= 0) or below each single LLM's point.
        "min_margin_over_llms": float(min(M.hull_quality_at(rc, rq, lc) - np.asarray(lq))),
    }


def _dense(hull: Mapping[str, Sequence[float]], per_segment: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A hull's points with each segment sampled linearly in cost, so that on a log axis the
    line drawn is the hull itself (a random mix of the two end points), not a log-space chord."""
    c, q = np.asarray(hull["cost"], float), np.asarray(hull["quality"], float)
    if c.size < 2:
        return c, q
    xs = np.concatenate([np.linspace(c[i], c[i + 1], per_segment, endpoint=False) for i in range(c.size - 1)]
                        + [c[-1:]])
    return xs, np.interp(xs, c, q)


def plot(results: Mapping[str, dict], path: str | Path, llm_names: Sequence[str] | None = None,
         title: str | None = None) -> Path:
    """One panel per test set on a log cost axis: the router's lambda points and hull, the
    single LLMs as numbered points with their hull, AIQs (over each panel's stated cost range)
    in the legend; a numbered key gives every LLM's full name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    n_llms = max(len(r["llms"]) for r in results.values())
    labels = [str(llm_names[j]) if llm_names and j < len(llm_names) else f"LLM {j}" for j in range(n_llms)]
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 3.2, 4.9 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = results[name]
        lo, hi = r.get("cost_range", (None, None))
        pts = [p for p in r["curve"] if p["cost"] > 0]
        ax.scatter([p["cost"] for p in pts], [p["quality"] for p in pts], s=9, c="C0", alpha=0.5, zorder=2)
        ax.plot(*_dense(r["hull"]), c="C0", lw=1.8, zorder=3, label=f"router hull (AIQ {r['aiq']:.3f})")
        sh = r.get("single_llm_hull")
        if sh:
            ax.plot(*_dense(sh), c="C3", lw=1.2, ls="--", zorder=2,
                    label=f"single-LLM hull (AIQ {r['zero_router_aiq']:.3f})")
        for p in r["llms"]:
            ax.scatter([p["cost"]], [p["quality"]], marker="o", s=120, c="white", edgecolors="C3", zorder=4)
            ax.annotate(str(p["index"] + 1), (p["cost"], p["quality"]), ha="center", va="center", fontsize=7,
                        color="C3", zorder=5)
        ax.set_xscale("log")
        if lo is not None:
            ax.axvspan(lo, hi, color="0.93", zorder=0, label="AIQ cost range (single LLMs)")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("mean cost per query (log scale)")
        ax.set_ylabel("acc_predict")
        ax.grid(True, which="major", lw=0.3, alpha=0.6)
        # Below the panel, so that it hides no point.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    key = "\n".join(f"{j + 1:>2}  {lab}" for j, lab in enumerate(labels))
    fig.text(1 - 3.1 / fig.get_figwidth(), 0.5, "single LLMs\n" + key, fontsize=7, family="monospace", va="center",
             ha="left")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1 - 3.2 / fig.get_figwidth(), 1))
    path = Path(path)
    fig.savefig(path, dpi=110)
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
    write_json_atomic({"llm_names": list(llm_names or []), "sets": results}, out / "cost_quality.json")
    plot(results, out / "cost_quality.png", llm_names)
    flat = {}
    for name, r in results.items():
        flat[f"{name}/router/aiq"] = r["aiq"]
        flat[f"{name}/router/max_quality"] = r["max_quality"]
        flat[f"{name}/zero_router/aiq"] = r["zero_router_aiq"]
        if np.isfinite(r["cost_to_match_best_single"]):  # absent: the router never matches it
            flat[f"{name}/router/cost_to_match_best_single"] = r["cost_to_match_best_single"]
    return flat
