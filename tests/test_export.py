"""python -m router_lab.export: a self-contained router directory (no Hydra config, no
training encoder path needed), its errors, and budget calibration saved into it."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import yaml

from router_lab.api import Router
from router_lab.calibrate import choose, main as calibrate_main, sweep
from router_lab.data.loaders.saved import save_records_jsonl
from router_lab.data.loaders.synthetic import load_synthetic
from router_lab.errors import UserError
from router_lab.export import main as export_main
from conftest import call_cli
from test_api import train_tiny_run

QUERIES = ["What is 2+2?", "Write a haiku about autumn", "Explain the statute of limitations"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("export_run"))


cli = call_cli


def test_export_is_self_contained(run, tmp_path, capsys):
    out = tmp_path / "exported"
    code, _, err = cli(capsys, export_main, f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"out={out}",
                       f"route_map={Path(__file__).resolve().parents[1] / 'conf' / 'route_maps' / 'example.yaml'}")
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"router.yaml", "model.safetensors", "encoder", ".router_lab_export"}
    assert (out / "encoder" / "model.safetensors").exists() and (out / "encoder" / "tokenizer.json").exists()
    meta = yaml.safe_load((out / "router.yaml").read_text())
    assert meta["_target_"] == "router_lab.models.classifier.ClassifierRouter"
    assert meta["hparams"]["encoder"]["pretrained"] == "encoder"
    assert [l["name"] for l in meta["llm_pool"]["llms"]] == meta["hparams"]["data_info"]["llm_names"]
    assert meta["encoder"]["pooling"] == "mean" and meta["policy"]["fallback_llm"] == "generalist-70b"
    assert meta["route_map"]["endpoints"]["frontier-xl"]["api_key_env"] == "OPENAI_API_KEY"
    assert "${" not in (out / "router.yaml").read_text()  # no Hydra interpolations left

    expected = [d.to_dict() for d in Router.load(out).route_batch(QUERIES)]
    # Move it; hide the run and the encoder it was trained with: it still loads and routes alike.
    moved = shutil.move(str(out), tmp_path / "elsewhere")
    tiny = run.parent / "tiny_bert"
    hidden_run, hidden_enc = run.with_name("hidden_run"), tiny.with_name("hidden_bert")
    run.rename(hidden_run)
    tiny.rename(hidden_enc)
    try:
        got = [d.to_dict() for d in Router.load(moved).route_batch(QUERIES)]
    finally:
        hidden_run.rename(run)
        hidden_enc.rename(tiny)
    assert [g["llm"] for g in got] == [e["llm"] for e in expected]
    assert got[0]["scores"] == pytest.approx(expected[0]["scores"], abs=1e-6)


@pytest.mark.parametrize("missing", ["router.yaml", "model.safetensors", "encoder"])
def test_a_router_dir_missing_a_file_says_which(run, tmp_path, capsys, missing):
    out = tmp_path / "exp"
    assert cli(capsys, export_main, f"ckpt_path={run}", f"out={out}")[0] == 0
    p = out / missing
    shutil.rmtree(p) if p.is_dir() else p.unlink()
    with pytest.raises(UserError, match=f"missing {missing}"):
        Router.load(out)


def test_export_errors_are_one_line(run, tmp_path, capsys):
    out = tmp_path / "exp"
    assert cli(capsys, export_main, f"ckpt_path={run}", f"out={out}")[0] == 0
    code, _, err = cli(capsys, export_main, f"ckpt_path={run}", f"out={out}")
    assert code == 2 and "already exists" in err and err.count("\n") == 1
    assert cli(capsys, export_main, f"ckpt_path={run}", f"out={out}", "overwrite=true")[0] == 0
    code, _, err = cli(capsys, export_main, f"ckpt_path={run}", f"outt={out}")
    assert code == 2 and "Could not override 'outt'" in err and "did you mean 'out'?" in err and err.count("\n") == 1
    code, _, err = cli(capsys, export_main, f"ckpt_path={tmp_path / 'nope.ckpt'}", f"out={tmp_path / 'x'}")
    assert code == 2 and "no such file" in err


def test_choose_on_a_hand_built_curve():
    curve = [{"lambda": 0.0, "cost": 0.1, "quality": 0.3}, {"lambda": 1.0, "cost": 0.4, "quality": 0.6},
             {"lambda": 2.0, "cost": 0.5, "quality": 0.6}, {"lambda": math.inf, "cost": 1.0, "quality": 0.7}]
    assert choose(curve, target_cost=0.45)["lambda"] == 1.0
    assert choose(curve, target_cost=0.5)["lambda"] == 1.0  # same quality, cheaper
    assert choose(curve, target_quality=0.55)["lambda"] == 1.0
    assert choose(curve, target_quality=0.7)["lambda"] == math.inf
    with pytest.raises(UserError, match="below the cheapest"):
        choose(curve, target_cost=0.05)
    with pytest.raises(UserError, match="above the best"):
        choose(curve, target_quality=0.9)
    with pytest.raises(UserError, match="exactly one"):
        choose(curve)


def test_calibration_meets_the_target_and_is_saved_with_the_router(run, tmp_path, capsys):
    out = tmp_path / "exp"
    assert cli(capsys, export_main, f"ckpt_path={run}", f"out={out}")[0] == 0
    records = load_synthetic("val", n_train=300, n_val=120, n_test=60)
    data = save_records_jsonl(records, tmp_path / "heldout.jsonl")
    router = Router.load(out)
    curve = sweep(router, records)
    lo, hi = curve[0]["cost"], curve[-1]["cost"]
    assert lo < hi and curve[0]["lambda"] == 0.0 and math.isinf(curve[-1]["lambda"])
    target = lo + 0.5 * (hi - lo)

    code, stdout, err = cli(capsys, calibrate_main, f"router={out}", f"input={data}", f"target_cost={target}")
    assert code == 0, err
    meta = yaml.safe_load((out / "router.yaml").read_text())
    lam = meta["policy"]["cost_lambda"]
    assert meta["calibration"]["target_cost"] == pytest.approx(target)
    assert meta["calibration"]["cost"] <= target and (out / "calibration.json").exists()

    # The reloaded router routes with the saved lambda, and meets the target on that data.
    calibrated = Router.load(out)
    assert calibrated.policy.cost_lambda == lam
    from router_lab import metrics as M
    import numpy as np

    ds = calibrated.route_batch([r.text for r in records])
    chosen = np.array([calibrated.llm_names.index(d.llm) for d in ds])
    costs = np.array([[r.costs[n] for n in calibrated.llm_names] for r in records])
    assert M.mean_cost(chosen, costs) == pytest.approx(meta["calibration"]["cost"])

    code, _, err = cli(capsys, calibrate_main, f"router={out}", f"input={data}", "target_cost=0.000001")
    assert code == 2 and "below the cheapest" in err
    code, _, err = cli(capsys, calibrate_main, f"router={out}", f"input={data}", "target_quality=0.2", "save=false")
    assert code == 0
