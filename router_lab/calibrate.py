"""Calibration on held-out data, saved with an exported router: the willingness-to-pay lambda
that meets a target average cost or quality, or -- for a category (label) router -- the
out-of-scope confidence threshold that meets a target out-of-scope recall.

    python -m router_lab.calibrate router=outputs/export/my_router input=heldout.jsonl target_cost=0.3
    python -m router_lab.calibrate router=DIR input=heldout.jsonl target_quality=0.75 [save=false]
    python -m router_lab.calibrate router=DIR input=../shared/data/clinc150/clinc150_train_val.json \
        loader=clinc150 loader.split=val loader.label=intent loader.include_oos=true target_oos_recall=0.9

The options are Hydra overrides of ``conf/calibrate.yaml`` (``--help`` lists them).

With lambda set, the router picks ``argmax_llm lambda * utility - cost`` (utility: the
router's per-LLM score from ``decide``; cost: the pool's price of each LLM), for any router
family (the rule and the grid: ``router_lab.policy``). lambda = 0 always takes the cheapest
LLM, lambda = inf the router's best-utility LLM. The sweep routes the held-out records once,
then for each lambda of ``policy.lambda_grid``
measures the mean cost (the records' own costs where they have them, else the pool's) and
``acc_predict`` (mean score of the chosen LLM), with the rest of the router's policy
(threshold -> fallback, category overrides) applied as when serving.

``target_cost``: the lambda of best quality whose mean cost is at most the target.
``target_quality``: the cheapest lambda whose quality is at least the target.
The result goes into ``router.yaml`` (``policy.cost_lambda`` and a ``calibration`` block)
and the whole curve into ``calibration.json`` beside it.

The data is a records table (router_lab's table format: ``query`` or ``conversation``,
``scores`` {llm: score} for every LLM of the pool, optional ``costs``, ``score_type``), or
any loader's file with ``loader=NAME loader.ARG=value`` (``conf/loader/``, ``router_lab.data.loaders``).

``target_oos_recall`` (category routers): the validation records carry labels; those the
router does not know (CLINC150's ``oos``) are out of scope. Candidate thresholds lie midway
between consecutive out-of-scope confidences; each is applied with the serving policy, and
the one of best in-scope accuracy (right category and not out of scope) whose out-of-scope
recall reaches the target is saved as ``policy.confidence_threshold``.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from router_lab import metrics as M
from router_lab.api import ROUTER_YAML, Router, iter_chunks
from router_lab.config_schema import CalibrateConfig
from router_lab.errors import UserError, hydra_cli, run_main
from router_lab.files import write_atomic
from router_lab.runs import read_yaml
from router_lab.policy import lambda_grid


def sweep(router: Router, records, lambdas: Sequence[float] | None = None, batch_size: int = 256) -> list[dict]:
    """[{lambda, cost, quality}] of the router with each lambda on the records."""
    if router.llm_costs is None:
        raise UserError("calibration needs LLM costs; the router's pool has none")
    if not records:
        raise UserError("calibration data is empty; expected held-out records with per-LLM scores")
    names = router.llm_names
    missing = [r.id for r in records if any(n not in r.scores for n in names)]
    if missing:
        raise UserError(f"calibration data: record {missing[0]!r} (and {len(missing) - 1} more) lacks scores for some "
                        f"of the router's LLMs {names}; expected a score for each")
    raw = raw_decisions(router, records, batch_size)
    scores = np.array([[r.scores[n] for n in names] for r in records], dtype=float)
    types = [r.score_type for r in records]
    if all(r.costs and all(n in r.costs for n in names) for r in records):
        costs = np.array([[r.costs[n] for n in names] for r in records], dtype=float)
    else:
        costs = np.tile(np.array(router.llm_costs, dtype=float), (len(records), 1))
    curve = []
    for lam in lambdas or lambda_grid(router.llm_costs):
        chosen = router.apply_policy(raw, dataclasses.replace(router.policy, cost_lambda=lam))["llm"].cpu().numpy()
        curve.append({"lambda": float(lam), "cost": M.mean_cost(chosen, costs),
                      "quality": M.acc_predict(chosen, scores, types)})
    return curve


def raw_decisions(router: Router, records, batch_size: int) -> dict[str, torch.Tensor]:
    """The router's raw decision tensors (before the serving policy) for every record, routed
    once in chunks; sweeps re-apply the policy to them."""
    parts: dict[str, list[torch.Tensor]] = {}
    for chunk in iter_chunks([r.text for r in records], batch_size):
        d, _ = router.decide_texts(chunk)
        for k, v in d.items():
            parts.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in parts.items()}


def threshold_sweep(router: Router, records, thresholds: Sequence[float] | None = None,
                    batch_size: int = 256) -> list[dict]:
    """[{threshold, in_scope_accuracy, oos_recall, fallback_rate}] of a category router on
    labelled records (labels it does not know = out of scope), routed once; ``thresholds``
    default to no threshold and the candidates of the module docstring."""
    if not router.label_router:
        raise UserError(f"target_oos_recall calibrates a category router trained on labels; {router.target} "
                        "(trained on scores) calibrates cost_lambda with target_cost= or target_quality=")
    known = set(router.categories)
    labels = [r.label for r in records]
    if not any(l in known for l in labels) or not any(l and l not in known for l in labels):
        raise UserError("calibration data needs in-scope records (labels among the router's categories) and "
                        "out-of-scope ones (any other label, e.g. CLINC150's oos: loader.include_oos=true); got "
                        f"{sum(l in known for l in labels)} in scope, {sum(bool(l) and l not in known for l in labels)} "
                        "out of scope")
    raw = raw_decisions(router, records, batch_size)
    inside = torch.tensor([l in known for l in labels])
    outside = torch.tensor([bool(l) and l not in known for l in labels])
    true = torch.tensor([router.categories.index(l) if l in known else -1 for l in labels])
    oos_conf = sorted(set(raw["confidence"][outside].float().tolist()) | {0.0, 1.0})
    candidates = thresholds if thresholds is not None else [0.0, *((a + b) / 2 for a, b in zip(oos_conf, oos_conf[1:]))]
    curve = []
    for t in candidates:
        d = router.apply_policy(raw, dataclasses.replace(router.policy, confidence_threshold=t))
        fb, cat = d["fallback"].cpu(), d["category"].cpu()
        curve.append({"threshold": float(t),
                      "in_scope_accuracy": float(((cat == true) & ~fb)[inside].double().mean()),
                      "oos_recall": float(fb[outside].double().mean()), "fallback_rate": float(fb.double().mean())})
    return curve


def choose_threshold(curve: list[dict], target_oos_recall: float) -> dict:
    """The curve point of best in-scope accuracy whose out-of-scope recall reaches the target."""
    ok = [p for p in curve if p["oos_recall"] >= target_oos_recall - 1e-12]
    if not ok:
        raise UserError(f"target_oos_recall={target_oos_recall} is above the best reachable out-of-scope recall "
                        f"{max(p['oos_recall'] for p in curve):.6g}")
    return max(ok, key=lambda p: (p["in_scope_accuracy"], -p["threshold"]))


def choose(curve: list[dict], target_cost: float | None = None, target_quality: float | None = None) -> dict:
    """The curve point meeting the target (module docstring)."""
    if (target_cost is None) == (target_quality is None):
        raise UserError("give exactly one of target_cost=... or target_quality=...")
    if target_cost is not None:
        ok = [p for p in curve if p["cost"] <= target_cost + 1e-12]
        if not ok:
            raise UserError(f"target_cost={target_cost} is below the cheapest achievable mean cost "
                            f"{min(p['cost'] for p in curve):.6g}")
        return max(ok, key=lambda p: (p["quality"], -p["cost"]))
    ok = [p for p in curve if p["quality"] >= target_quality - 1e-12]
    if not ok:
        raise UserError(f"target_quality={target_quality} is above the best achievable quality "
                        f"{max(p['quality'] for p in curve):.6g}")
    return min(ok, key=lambda p: (p["cost"], -p["quality"]))


def save_calibration(export_dir: str | Path, point: dict, target: dict, curve: list[dict], data: str, n: int,
                     policy: dict | None = None) -> Path:
    """``policy`` (default ``{cost_lambda: point's lambda}``) into router.yaml's policy, the
    point into its ``calibration`` block, the curve into calibration.json."""
    from router_lab.export import write_router_yaml

    root = Path(export_dir)
    f = root / ROUTER_YAML
    if not f.is_file():
        raise UserError(f"router={root}: no {ROUTER_YAML}; calibration is saved into an export dir "
                        "(python -m router_lab.export ckpt_path=... out=DIR first)")
    meta = read_yaml(f, "a router.yaml written by python -m router_lab.export")
    meta["policy"] = {**(meta.get("policy") or {}), **(policy or {"cost_lambda": point["lambda"]})}
    meta["calibration"] = {**target, **point, "data": str(data), "n": int(n)}
    write_router_yaml(root, meta)
    write_atomic(root / "calibration.json", json.dumps({"chosen": meta["calibration"], "curve": curve}, indent=2))
    return f


def calibrate(opts: CalibrateConfig) -> dict:
    from router_lab.route import load_eval_records

    if not opts.router or not opts.input:
        raise UserError("expected router=DIR (an export dir) and input=FILE (held-out records with scores, or "
                        "labels for target_oos_recall)")
    router = Router.load(opts.router)
    records = load_eval_records(router, opts.input, opts.loader)
    if opts.target_oos_recall is not None or router.label_router:
        return calibrate_threshold(router, records, opts)
    curve = sweep(router, records)
    point = choose(curve, opts.target_cost, opts.target_quality)
    target = {"target_cost": opts.target_cost} if opts.target_cost is not None else \
        {"target_quality": opts.target_quality}
    ref = {"router_only": curve[-1], "cheapest": curve[0]}
    print(json.dumps({**target, **point, "n": len(records), **ref}))
    if opts.save:
        print(f"saved policy.cost_lambda={point['lambda']:.6g} into "
              f"{save_calibration(opts.router, point, target, curve, opts.input, len(records))}")
    return point


def calibrate_threshold(router: Router, records, opts: CalibrateConfig) -> dict:
    """A category router's out-of-scope threshold (module docstring)."""
    if opts.target_oos_recall is None or opts.target_cost is not None or opts.target_quality is not None:
        raise UserError("a category router calibrates its out-of-scope threshold: give target_oos_recall=R "
                        "(0 < R <= 1) and no target_cost / target_quality")
    if not 0 < opts.target_oos_recall <= 1:
        raise UserError(f"target_oos_recall={opts.target_oos_recall}; expected a recall in (0, 1]")
    curve = threshold_sweep(router, records)
    point = choose_threshold(curve, opts.target_oos_recall)
    target = {"target_oos_recall": opts.target_oos_recall}
    n_oos = sum(bool(r.label) and r.label not in router.categories for r in records)
    print(json.dumps({**target, **point, "n": len(records), "n_out_of_scope": n_oos, "no_threshold": curve[0]}))
    if opts.save:
        f = save_calibration(opts.router, point, target, curve, opts.input, len(records),
                             policy={"confidence_threshold": point["threshold"]})
        print(f"saved policy.confidence_threshold={point['threshold']:.6g} into {f}")
    return point


@hydra_cli("calibrate", schema=CalibrateConfig, options=True)
def main(opts: CalibrateConfig) -> dict:
    from router_lab import console

    console.configure()
    return run_main(calibrate, opts)


if __name__ == "__main__":
    main()
