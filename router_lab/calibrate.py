"""Budget calibration: choose the willingness-to-pay lambda that meets a target average cost
or a target quality on held-out data, and save it with an exported router.

    python -m router_lab.calibrate router=outputs/export/my_router data=heldout.jsonl target_cost=0.3
    python -m router_lab.calibrate router=DIR data=heldout.jsonl target_quality=0.75 [save=false]

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
``scores`` {llm: score} for every LLM of the pool, optional ``costs``, ``score_type``).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from router_lab import metrics as M
from router_lab.api import ROUTER_YAML, Router, iter_chunks
from router_lab.errors import UserError, run_main
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
    parts: dict[str, list[torch.Tensor]] = {}
    for chunk in iter_chunks([r.text for r in records], batch_size):
        d, _ = router.decide_texts(chunk)
        for k, v in d.items():
            parts.setdefault(k, []).append(v)
    raw = {k: torch.cat(v) for k, v in parts.items()}
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


def save_calibration(export_dir: str | Path, point: dict, target: dict, curve: list[dict], data: str, n: int) -> Path:
    from router_lab.export import write_router_yaml

    root = Path(export_dir)
    f = root / ROUTER_YAML
    if not f.is_file():
        raise UserError(f"router={root}: no {ROUTER_YAML}; calibration is saved into an export dir "
                        "(python -m router_lab.export ckpt_path=... out=DIR first)")
    meta = read_yaml(f, "a router.yaml written by python -m router_lab.export")
    meta["policy"] = {**(meta.get("policy") or {}), "cost_lambda": point["lambda"]}
    meta["calibration"] = {**target, "lambda": point["lambda"], "cost": point["cost"], "quality": point["quality"],
                           "data": str(data), "n": int(n)}
    write_router_yaml(root, meta)
    write_atomic(root / "calibration.json", json.dumps({"chosen": meta["calibration"], "curve": curve}, indent=2))
    return f


@dataclass
class CalibrateOptions:
    router: str = ""
    data: str = ""
    target_cost: float | None = None
    target_quality: float | None = None
    save: bool = True


def calibrate(opts: CalibrateOptions) -> dict:
    from router_lab.data.loaders import load_table

    if not opts.router or not opts.data:
        raise UserError("expected router=DIR (an export dir) and data=FILE (held-out records with scores)")
    router = Router.load(opts.router)
    records = load_table(opts.data, llm_names=router.llm_names)
    curve = sweep(router, records)
    point = choose(curve, opts.target_cost, opts.target_quality)
    target = {"target_cost": opts.target_cost} if opts.target_cost is not None else \
        {"target_quality": opts.target_quality}
    ref = {"router_only": curve[-1], "cheapest": curve[0]}
    print(json.dumps({**target, **point, "n": len(records), **ref}))
    if opts.save:
        print(f"saved policy.cost_lambda={point['lambda']:.6g} into "
              f"{save_calibration(opts.router, point, target, curve, opts.data, len(records))}")
    return point


def main(argv: list[str] | None = None) -> None:
    from router_lab.route import parse_options, setup_cli

    setup_cli()
    opts = run_main(parse_options, sys.argv[1:] if argv is None else argv, CalibrateOptions, __doc__)
    run_main(calibrate, opts)


if __name__ == "__main__":
    main()
