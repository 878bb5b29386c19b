"""router_lab.report rendered from small real runs (a 2-seed multirun), plus copies edited into
another router setting, a partial metrics.json and a run with a missing test set."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

TINY = ["data.train.n_train=200", "data.val.n_val=50", "data.test.test.n_test=100"]


def make_small_runs(root: Path) -> Path:
    """A 2-seed multirun of the default router on tiny synthetic data (2 short epochs, so
    checkpoints exist) under ``root/sweep``; returns the sweep dir."""
    sweep = root / "sweep"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    res = subprocess.run([sys.executable, "-m", "router_lab.train", "-m", "debug=limit", "logger=none", "seed=1,2",
                          *TINY, f"paths.cache_dir={root / 'cache'}", f"hydra.sweep.dir={sweep}",
                          "extras.print_config=false"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return sweep


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report_runs")
    sweep = make_small_runs(root)
    # The same runs as another router family (as if model=other had been swept).
    other = root / "other"
    for job in ("0", "1"):
        dst = other / job
        shutil.copytree(sweep / job, dst)
        hy = yaml.safe_load((dst / ".hydra" / "hydra.yaml").read_text())
        hy["hydra"]["runtime"]["choices"]["model"] = "other"
        (dst / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hy))
        m = json.loads((dst / "metrics.json").read_text())
        m = {k: (v * 0.9 if "/router/" in k else v) for k, v in m.items()}
        (dst / "metrics.json").write_text(json.dumps(m))
    # cost_quality.json as router_lab.cost_quality writes it: per test set, curve points, hull, AIQ.
    (other / "0" / "cost_quality.json").write_text(json.dumps({"llm_names": ["a", "b"], "sets": {"math": {
        "curve": [{"lambda": 0.1, "cost": 0.3, "quality": 0.5}, {"lambda": 1, "cost": 1.0, "quality": 0.6},
                  {"lambda": 10, "cost": 2.0, "quality": 0.65}],
        "hull": {"cost": [0.3, 1.0, 2.0], "quality": [0.5, 0.6, 0.65]}, "aiq": 0.58}}}))
    # A run without the "law" test set: compared on the others, law left out (seed 3: a
    # third seed of the setting, not a rerun of seed 1).
    mism = root / "mismatched" / "0"
    shutil.copytree(sweep / "0", mism)
    cfg = yaml.safe_load((mism / ".hydra" / "config.yaml").read_text())
    cfg["seed"] = 3
    (mism / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    m = json.loads((mism / "metrics.json").read_text())
    (mism / "metrics.json").write_text(json.dumps({k: v for k, v in m.items() if not k.startswith("law/")}))
    # A partial metrics.json (killed mid-write).
    part = root / "partial" / "0"
    shutil.copytree(sweep / "1", part)
    (part / "metrics.json").write_text((part / "metrics.json").read_text()[:200])
    return root


def report(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "router_lab.report", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_report_tables_plots_and_left_out(runs, tmp_path):
    out = tmp_path / "report"
    readme = tmp_path / "README.md"
    readme.write_text("# study\n\n<!-- results:start -->\nold\n<!-- results:end -->\n\nmore text\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    roots = ",".join(str(runs / d) for d in ("sweep", "other", "mismatched", "partial"))
    res = report([f"roots=[{roots}]", f"out={out}", f"readme={readme}"], cwd=cwd)
    assert res.returncode == 0, res.stderr
    assert not list(cwd.iterdir())  # written where told, nothing in the working directory
    md = (out / "report.md").read_text()
    # one section (same tiny data), settings classifier and other, seeds aggregated
    assert "| classifier | classifier | minilm | debug=limit | 1,2,3 (3) |" in md
    assert "### acc_predict (%)" in md and "### cost (mean per query)" in md
    header = next(l for l in md.splitlines() if l.startswith("| test set |"))
    assert header.split(" | ")[1:3] == ["classifier", "other"] and "best_single" in header and "oracle" in header
    assert " ± " in md
    # the run without "law": compared on the rest, law listed as left out; the partial run skipped
    assert "| law |" not in md and "| math |" in md
    assert "test set law: left out, missing in 1 of 5 runs (" in md and "mismatched/0)" in md
    assert "skipped" in md and "partial" in md and "not valid JSON" in md
    assert [l for l in res.stderr.splitlines() if l.startswith("skipped")] == [l for l in res.stderr.splitlines() if "partial/0" in l]
    assert len([l for l in res.stderr.splitlines() if l.startswith("skipped")]) == 1
    # CSV: mean/std/n per setting, method, test set, metric
    rows = list(csv.DictReader((out / "summary.csv").open()))
    r = next(r for r in rows if r["setting"] == "classifier" and r["test_set"] == "avg_in_distribution"
             and r["metric"] == "acc_predict")
    per_run = [json.loads((runs / "sweep" / j / "metrics.json").read_text())["avg_in_distribution/router/acc_predict"]
               for j in ("0", "1")]
    mism = json.loads((runs / "mismatched" / "0" / "metrics.json").read_text())["avg_in_distribution/router/acc_predict"]
    vals = per_run + [mism]
    assert int(r["n"]) == 3 and abs(float(r["mean"]) - sum(vals) / 3) < 1e-9
    assert {r["method"] for r in rows} >= {"router", "random", "best_single", "best_per_task", "oracle"}
    assert (out / "runs.csv").read_text().count("\n") > 10
    # plots: acc_predict per test set; cost-quality (costs exist) with the curve's AIQ
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"acc_predict_1_synthetic.png", "cost_quality_1_synthetic.png", "cost_quality_curves_1_synthetic.png"} \
        <= set(pngs)
    assert "### AIQ (%)" in md and "| math |" in md.split("### AIQ (%)")[1]
    assert all((out / p).stat().st_size > 5000 for p in pngs)
    meta = json.loads((out / "report.json").read_text())
    assert [s["label"] for s in meta["sections"][0]["settings"]] == ["classifier", "other"]
    # the README block was replaced, the rest kept
    text = readme.read_text()
    assert "old" not in text and "more text" in text and "| math |" in text
    assert f"python -m router_lab.report roots=[{roots}] out={out} readme={readme}" in text
    assert not list(tmp_path.glob(".report.tmp-*"))


def test_cost_quality_curves_are_found_in_any_nesting():
    from router_lab.report import cost_quality_curves

    curves = cost_quality_curves({"test": {"avg_x": {"points": [[0.1, 0.5], [1, 0.7]], "aiq": 0.6,
                                                     "hull": {"cost": [0.1, 1], "quality": [0.5, 0.7]}}}})
    assert curves == [{"name": "test/avg_x", "cost": [0.1, 1.0], "quality": [0.5, 0.7], "aiq": 0.6,
                       "hull_cost": [0.1, 1.0], "hull_quality": [0.5, 0.7]}]


def test_mean_std():
    from router_lab.report import fmt, mean_std

    assert mean_std([0.5, 0.7]) == pytest.approx((0.6, 0.1414213562, 2))
    assert mean_std([0.5]) == (0.5, 0.0, 1)
    assert fmt(0.6, 0.1414213562, 2, "acc_predict") == "60.00 ± 14.14"
    assert fmt(float("nan"), 0, 0, "acc_predict") == "—"


def test_per_query_decisions_from_checkpoint(runs):
    from router_lab.report import per_query_decisions

    rows = per_query_decisions(runs / "sweep" / "0", test_set="math", limit=5)
    assert len(rows) == 5 and {r["test_set"] for r in rows} == {"math"}
    r = rows[0]
    assert r["chosen_llm"] and r["text"] and r["best_llms"] and 0 <= r["chosen_score"] <= r["best_score"] + 1e-9


def test_no_runs_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    res = report([f"roots={tmp_path / 'empty'}", f"out={out}"])
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"error: report: no finished runs (a dir with a valid metrics.json) "
                                               f"under {tmp_path / 'empty'}"]
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_only_partial_runs_is_an_error(runs, tmp_path):
    res = report([f"roots={runs / 'partial'}", f"out={tmp_path / 'out'}"])
    assert res.returncode == 2 and "no finished runs" in res.stderr and "1 skipped" in res.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_option_and_missing_dir(tmp_path):
    res = report([f"outt={tmp_path}"])
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [
        f"error: Could not override 'outt'. To append to your config use +outt={tmp_path} (Key 'outt' is not in struct); "
        "did you mean 'out'?"]
    res = report([f"roots={tmp_path / 'nope'}"])
    assert res.returncode == 2 and "does not exist" in res.stderr


def test_same_test_files_share_a_section_and_training_differences_are_noted(runs, tmp_path):
    """Routers trained with different validation (RouterDC selects on the training sets,
    RankRouter on a held-out split) but tested on the same files go in one table, with a note;
    different test files make their own section."""
    from router_lab.report import build_sections, load_runs, markdown_report

    def variant(name: str, model: str, val, test_path: str) -> None:
        dst = tmp_path / name
        shutil.copytree(runs / "sweep" / "0", dst)
        cfg = yaml.safe_load((dst / ".hydra" / "config.yaml").read_text())
        cfg["data"].update(val=val, test_split_by_task=False,
                           test={"math": {"loader": "routerdc", "path": test_path}})
        (dst / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
        hy = yaml.safe_load((dst / ".hydra" / "hydra.yaml").read_text())
        hy["hydra"]["runtime"]["choices"]["model"] = model
        (dst / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hy))

    variant("dc", "routerdc", "train", "tests/math.json")
    variant("rank", "rankrouter", None, "tests/math.json")
    variant("other_tests", "classifier", "train", "tests/other_math.json")
    found, skipped = load_runs([tmp_path])
    assert not skipped and len(found) == 3
    sections = build_sections(found)
    assert sorted(sorted(s.labels.values()) for s in sections) == [["classifier"], ["rankrouter", "routerdc"]]
    shared = next(s for s in sections if len(s.settings) == 2)
    assert len(shared.notes) == 1
    head, parts = shared.notes[0].split(": ", 1)
    assert head == "settings differ in data.val (same test sets)"
    assert sorted(parts.split("; ")) == ["rankrouter: null (held-out split)", "routerdc: train"]
    assert "Note: settings differ in data.val" in markdown_report(sections, [], [str(tmp_path)], {})


def test_trainer_overrides_make_their_own_setting_and_a_seed_counts_once(runs, tmp_path):
    """A 1-epoch run is not averaged with full runs (trainer.* overrides define the setting),
    and a rerun of a seed replaces the earlier run instead of being averaged with it."""
    import time

    from router_lab.report import build_sections, load_runs, markdown_report

    def copy(name: str, job: str, extra_override: str | None = None, scale: float = 1.0) -> Path:
        dst = tmp_path / name
        shutil.copytree(runs / "sweep" / job, dst)
        if extra_override:
            ov = yaml.safe_load((dst / ".hydra" / "overrides.yaml").read_text())
            (dst / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(ov + [extra_override]))
        m = json.loads((dst / "metrics.json").read_text())
        (dst / "metrics.json").write_text(json.dumps({k: v * scale if "/router/" in k else v for k, v in m.items()}))
        return dst

    copy("full_1", "0")
    copy("full_2", "1")
    copy("short_1", "0", "trainer.max_epochs=1", 0.5)
    copy("gpu_2", "1", "trainer.accelerator=cpu")  # where it ran: same setting as full_*
    time.sleep(0.05)
    rerun = copy("rerun_1", "0", scale=0.8)  # seed 1 again, finished last
    found, _ = load_runs([tmp_path])
    (sec,) = build_sections(found)
    assert sorted(sec.labels.values()) == ["classifier", "classifier (trainer.max_epochs=1)"]
    full = next(rs for s, rs in sec.settings.items() if "max_epochs" not in s[2])
    # seeds 1 and 2 once each: seed 1 is the rerun; seed 2 has two runs (full_2, gpu_2), the later kept
    assert sorted(r.seed for r in full) == [1, 2] and rerun.resolve() in {r.path for r in full}
    notes = [l for l in sec.left_out if l.startswith("seed ")]
    assert len(notes) == 2 and any("rerun_1" in l and "full_1" in l for l in notes)
    md = markdown_report([sec], [], [str(tmp_path)], {})
    assert "seed 1: 2 runs of the same setting; kept the latest" in md


def test_report_over_an_older_one_leaves_no_stale_plots(runs, tmp_path):
    from router_lab.report import make_report

    other_data = tmp_path / "runs" / "data_seed9"  # the same run as if on other data: a second section
    shutil.copytree(runs / "sweep" / "0", other_data)
    cfg = yaml.safe_load((other_data / ".hydra" / "config.yaml").read_text())
    cfg["data_seed"] = 9
    (other_data / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "report"
    make_report([runs / "sweep", other_data], out=out)
    first = {p.name for p in out.glob("*.png")}
    make_report([runs / "sweep"], out=out)
    plots = {p for s in json.loads((out / "report.json").read_text())["sections"] for p in s["plots"]}
    assert plots < first and {p.name for p in out.glob("*.png")} == plots
