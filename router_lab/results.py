"""What a tested router produces, in one place: its decisions on every test set
(``trainer.predict``), their metrics against the baselines (``router_lab.evaluation``, pure
functions on arrays), the results table, the per-query decisions and ``metrics.json``.
Used by ``train``, ``eval``, ``report.per_query_decisions`` and ``route mode=evaluate``.

Files (written into the run dir): ``results.md`` (the table), ``predictions.jsonl`` (one
``decision_rows`` row per test query), ``cost_quality.{json,png}`` when a test set has costs,
and ``metrics.json`` last (its presence marks a finished run). The one metrics.json schema:
a flat JSON object ``name -> finite number``, names ``<test set>/<method>/<metric>`` (``route
mode=evaluate``: the data file's stem as the test set, ``router`` as the method); an
undefined value (NaN) is left out rather than written as null.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from router_lab.evaluation import concat, evaluate, ground_truth, results_table
from router_lab.files import write_atomic, write_json_atomic

log = logging.getLogger("router_lab.results")


def decide_test_sets(trainer, model, dm, ckpt_path: str | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per test set: the router's decisions (``predict_step``, checkpoint loaded weights-only)
    merged with the set's ``ground_truth``: what ``evaluation.evaluate`` takes."""
    preds = trainer.predict(model, datamodule=dm, ckpt_path=ckpt_path, weights_only=True) or []
    if preds and isinstance(preds[0], dict):  # one test set: Lightning returns its batches unnested
        preds = [preds]
    return {name: concat(batches) | ground_truth(dm.test_sets[name]) for name, batches in zip(dm.test_set_names, preds)}


def decision_rows(set_name: str, out: Mapping[str, np.ndarray], records: Sequence, llm_names: Sequence[str],
                  categories: Sequence[str] = ()) -> Iterator[dict]:
    """One dict per query of a test set: test_set, index, id, text, task, the chosen LLM, its
    score, the best score and the best LLMs (score data), confidence, fallback, and the label
    and predicted category (category routers on labelled data)."""
    names = list(llm_names)
    for row, rec in enumerate(records):
        chosen = int(out["chosen"][row])
        line = {"test_set": set_name, "index": row, "id": rec.id, "text": rec.text, "task": rec.task,
                "chosen_llm": names[chosen] if 0 <= chosen < len(names) else None}
        scores = out["scores"][row] if out["scores"].size else np.array([])
        if scores.size and not np.isnan(scores).all():
            best = np.nanmax(scores)
            in_pool = 0 <= chosen < len(scores)
            line.update(chosen_score=None if not in_pool or np.isnan(scores[chosen]) else float(scores[chosen]),
                        best_score=float(best),
                        best_llms=[n for n, v in zip(names, scores) if not np.isnan(v) and v >= best - 1e-9])
        for k in ("confidence", "fallback"):
            if k in out:
                line[k] = out[k][row].item()
        if "pred_label" in out and 0 <= int(out["label"][row]) < len(categories):
            line.update(label=categories[int(out["label"][row])], predicted=categories[int(out["pred_label"][row])])
        yield line


def write_metrics(metrics: Mapping[str, float], path: Path) -> dict[str, float]:
    """metrics.json in the one schema (module docstring); returns what was written."""
    undefined = sorted(k for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v))
    if undefined:
        log.info("left out of metrics.json (undefined): %s", ", ".join(undefined))
    kept = {k: v for k, v in metrics.items() if k not in set(undefined)}
    write_json_atomic(kept, path)
    return kept


def report_run(dm, outputs: Mapping[str, Mapping[str, np.ndarray]], output_dir: str | Path,
               extra: Mapping[str, float] | None = None, title: str = "router vs baselines",
               two_model: Mapping[str, str] | None = None) -> dict:
    """Metrics, table, predictions and metrics.json of a tested router (``outputs``:
    ``decide_test_sets``); prints the table and returns the metrics."""
    from router_lab.cost_quality import cost_quality_report
    from router_lab.two_model import two_model_report

    names = list(dm.pool.names)
    metrics = evaluate(outputs, ground_truth(dm.train_set), dm.groups)
    # Test sets with costs, routers with utilities: the willingness-to-pay sweep
    # (cost_quality.json / .png, <set>/router/aiq); nothing otherwise.
    metrics.update(cost_quality_report(outputs, output_dir, llm_names=names))
    # +two_model.strong=<llm> +two_model.weak=<llm>: RouteLLM's APGR / CPT (router_lab.two_model)
    metrics.update(two_model_report(outputs, names, two_model))
    metrics.update(extra or {})
    table = results_table(metrics, dm.test_set_names, dm.groups, title=title)
    print("\n" + table + "\n")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "results.md", "```\n" + table + "\n```\n")
    lines = (json.dumps(row) + "\n" for name, o in outputs.items()
             for row in decision_rows(name, o, dm.test_sets[name].records, names, dm.categories))
    write_atomic(out / "predictions.jsonl", "".join(lines))
    write_metrics(metrics, out / "metrics.json")  # last: its presence marks a finished run
    return metrics
