"""Cost-quality evaluation: the lambda sweep on hand-built outputs, and cost-aware RouterDC on a
small RouterBench-format file the test writes (curve, hull, AIQ, PNG; missing cost column).

    python -m pytest tests/test_cost_quality.py -q
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from router_lab.cost_quality import cost_quality_report, sweep

MODELS = ["cheap-1b", "mid-8b", "big-70b", "coder-7b"]
COSTS = {"cheap-1b": 0.001, "mid-8b": 0.01, "big-70b": 0.1, "coder-7b": 0.01}


def write_routerbench(path: Path, n: int = 30, drop_cost_of: str | None = None) -> Path:
    """A RouterBench-format CSV: prompt, eval_name, one 0/1 column per model, `<model>|total_cost`."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        task = ["mmlu", "mbpp"][i % 2]
        row = {"sample_id": f"{task}.{i}", "prompt": f"{'code a function' if task == 'mbpp' else 'history fact'} {i}",
               "eval_name": task}
        for m in MODELS:
            p = {"cheap-1b": 0.3, "mid-8b": 0.5, "big-70b": 0.8, "coder-7b": 0.9 if task == "mbpp" else 0.2}[m]
            row[m] = float(rng.random() < p)
            row[f"{m}|total_cost"] = COSTS[m] * (1 + 0.1 * rng.random())
        rows.append(row)
    df = pd.DataFrame(rows)
    if drop_cost_of:
        df = df.drop(columns=[f"{drop_cost_of}|total_cost"])
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


def _out(util, scores, costs):
    n = len(scores)
    return {"utilities": np.asarray(util, float), "scores": np.asarray(scores, float),
            "costs": np.asarray(costs, float), "is_probability": np.ones(n, bool)}


def test_sweep_on_hand_built_outputs():
    # Two queries, two LLMs: A costs 0, B costs 1; the router predicts B better on both;
    # B is right on query 0 only, A on neither.
    out = _out(util=[[0.2, 0.9], [0.2, 0.9]], scores=[[0, 1], [0, 0]], costs=[[0, 1], [0, 1]])
    r = sweep(out, lambdas=[0.0, 1.0, 10.0])
    # lambda 0 and 1 (0.2 vs -0.1): A -> cost 0, quality 0; lambda 10: B -> cost 1, quality 0.5
    assert [(p["cost"], p["quality"]) for p in r["curve"]] == [(0, 0), (0, 0), (1, 0.5)]
    assert r["hull"] == {"cost": [0.0, 1.0], "quality": [0.0, 0.5]}
    assert r["aiq"] == pytest.approx(0.25) and r["max_quality"] == 0.5
    assert [(p["cost"], p["quality"]) for p in r["llms"]] == [(0, 0), (1, 0.5)]
    assert sweep({k: v for k, v in out.items() if k != "costs"}) is None


def test_router_and_single_llm_aiq_share_one_cost_range():
    # Three LLMs costing 1, 2, 4 (mean over rows); the router picks the free-ish LLM 0 at low
    # lambda and LLM 2 at high lambda. Both AIQs are over [1, 4], the single LLMs' range.
    out = _out(util=[[0.1, 0.2, 0.9]] * 2, scores=[[0, 1, 1], [0, 0, 1]], costs=[[1, 2, 4]] * 2)
    r = sweep(out, lambdas=[0.0, 100.0])
    assert r["cost_range"] == [1.0, 4.0]
    # router points (1, 0) (4, 1): AIQ over [1, 4] = 0.5; single LLMs (1, 0) (2, 0.5) (4, 1): the
    # hull is the line (1, 0)-(4, 1) too ((2, 0.5) lies above it: hull (1,0) (2,.5) (4,1)):
    # area = 0.25 + 1.5 = 1.75 over 3
    assert r["aiq"] == pytest.approx(0.5) and r["zero_router_aiq"] == pytest.approx(1.75 / 3)
    assert r["best_single"]["index"] == 2 and r["cost_to_match_best_single"] == pytest.approx(4.0)
    assert r["min_margin_over_llms"] == pytest.approx(1 / 3 - 0.5)  # below LLM 1 at cost 2


def test_report_writes_json_png_and_flat_metrics(tmp_path):
    out = _out(util=[[0.2, 0.9], [0.6, 0.4]], scores=[[0, 1], [1, 0]], costs=[[0, 1], [0, 1]])
    flat = cost_quality_report({"s": out, "no_costs": {"scores": out["scores"]}}, tmp_path, ["A", "B"])
    assert set(flat) == {"s/router/aiq", "s/router/max_quality", "s/zero_router/aiq",
                         "s/router/cost_to_match_best_single"}
    saved = json.loads((tmp_path / "cost_quality.json").read_text())
    assert list(saved["sets"]) == ["s"] and saved["llm_names"] == ["A", "B"]
    assert (tmp_path / "cost_quality.png").stat().st_size > 1000
    assert cost_quality_report({"x": {"scores": out["scores"]}}, tmp_path / "none") == {}
    assert not (tmp_path / "none").exists()


def _overrides(csv: Path, tiny_bert) -> list[str]:
    return ["+experiment=routerdc_routerbench", f"data.train={csv}", f"encoder.pretrained={tiny_bert}",
            "encoder.max_length=32", "model.top_k=1", "model.last_k=2", "trainer.max_steps=4",
            "trainer.val_check_interval=2", "data.batch_size=8", "model.H=1"]


def test_cost_aware_routerdc_on_routerbench_fixture(tmp_path, cfg_factory, tiny_bert):
    from router_lab.train import train

    csv = write_routerbench(tmp_path / "rb.csv")
    cfg = cfg_factory(_overrides(csv, tiny_bert) + ["model.cost_rate=2.0", "model.cost_lambda=5.0"])
    metrics, objects = train(cfg)
    run = Path(cfg.paths.output_dir)
    assert (run / "cost_quality.png").exists()
    sets = json.loads((run / "cost_quality.json").read_text())["sets"]
    assert set(sets) == {"mmlu", "mbpp"}
    for name in sets:
        assert 0.0 <= metrics[f"{name}/router/aiq"] <= 1.0 and f"{name}/router/cost" in metrics
    # cost_lambda routes by lambda * quality - cost: with lambda 0 the cheapest LLM always wins.
    model, dm = objects["model"], objects["datamodule"]
    batch = next(iter(dm.test_dataloader()[0]))
    assert (model.decide(batch, cost_lambda=0.0)["llm"] == batch["costs"].argmin(1)).all()


def test_routerbench_missing_cost_column_is_one_error_line(tmp_path, cfg_factory, tiny_bert, capsys):
    from router_lab.errors import run_main
    from router_lab.train import train

    csv = write_routerbench(tmp_path / "rb.csv", drop_cost_of="mid-8b")
    cfg = cfg_factory(_overrides(csv, tiny_bert))
    with pytest.raises(SystemExit) as e:
        run_main(train, cfg)
    err = capsys.readouterr()
    lines = [line for line in err.err.splitlines() if line.startswith("error:")]
    assert e.value.code == 2 and len(lines) == 1 and "mid-8b|total_cost" in lines[0]
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()
