"""Trust boundary (README "Security model"): checkpoints, run dirs and export dirs are data.

Each malicious fixture is crafted here and fed to the real entry point (``python -m
router_lab.X`` in a fresh interpreter, or its ``main()``): a pickle whose ``__reduce__`` would
create a marker file; a run dir whose saved config names ``builtins.open`` / ``os.system``;
an export whose ``router.yaml`` names a module that creates a marker when imported; an export
whose route map sends a canary environment variable to a loopback listener. The marker never
appears, the canary never arrives, the user gets one ``error:`` line and exit 2. Data-loss
checks: ``overwrite=true`` on a non-export dir and on ``.``, ``output=`` equal to the input
(also through a symlink), two runs started in the same second, a ``task_name`` with ``..``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from fastapi import Request  # module level: the listener's annotation is resolved by name

from router_lab.api import Router
from router_lab.errors import UserError
from router_lab.export import export_router, main as export_main
from router_lab.route import main as route_main
from router_lab.runs import FAMILIES, EXPORT_MARKER
from test_api import train_tiny_run
from test_export import cli

REPO = Path(__file__).resolve().parents[1]
CANARY = "canary-secret-0d6f1a"


# ------------------------------------------------------------------ fixtures and helpers

@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("security_run"))


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> Path:
    return export_router(Router.load(run), tmp_path_factory.mktemp("security_exp") / "exp")


def py(module: str, *args: str, tmp: Path, extra_path: Path | None = None, env: dict | None = None,
       cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m module args`` as a user runs it (this worktree first on the path)."""
    path = os.pathsep.join([str(REPO), *([str(extra_path)] if extra_path else [])])
    full = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "ROUTER_LAB_CACHE_DIR": str(tmp / "cache"), **(env or {})}
    full.pop("ROUTER_LAB_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout)


def one_error_line(p: subprocess.CompletedProcess, needle: str) -> None:
    errors = [l for l in p.stderr.splitlines() if l.startswith("error:")]
    assert p.returncode == 2, p.stderr[-2000:]
    assert len(errors) == 1 and needle in errors[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr


class Payload:
    """Pickles to ``open(marker, "w")``: unpickling it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": Payload(marker)}, path)
    return path


def evil_run(run: Path, root: Path, marker: Path) -> Path:
    """A copy of a real run dir whose best.ckpt is the pickle payload."""
    dst = root / "evil_run"
    shutil.copytree(run, dst)
    evil_checkpoint(dst / "checkpoints" / "best.ckpt", marker)
    return dst


def test_the_payload_would_run_if_unpickled(tmp_path):
    """The fixture is live: an ordinary (non weights-only) load creates the marker."""
    marker = tmp_path / "marker"
    p = evil_checkpoint(tmp_path / "x.ckpt", marker)
    torch.load(p, weights_only=False)
    assert marker.exists()


# ------------------------------------------------------------------ pickles: every entry point

def test_train_resume_from_a_pickle_payload_runs_nothing(run, tmp_path):
    marker = tmp_path / "marker"
    ckpt = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    p = py("router_lab.train", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'out'}", "logger=none",
           "extras.print_config=false", tmp=tmp_path)
    one_error_line(p, "not a weights-only checkpoint")
    assert not marker.exists()
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_train_refuses_a_url_checkpoint(cfg_factory):
    from router_lab.train import train

    with pytest.raises(UserError, match="a URL; expected a local checkpoint file"):
        train(cfg_factory(["ckpt_path=http://127.0.0.1:9/x.ckpt"]))


def test_train_resumes_a_real_checkpoint_weights_only(run, tmp_path, monkeypatch):
    """Resume still works, and Lightning reads the full checkpoint (optimizer, loops,
    callbacks) with weights-only loading."""
    from conftest import compose
    from router_lab.train import train

    flags = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: flags.append(k.get("weights_only")) or real_load(*a, **k))
    root, out = run.parent, tmp_path / "resumed"
    cfg = compose([f"paths.cache_dir={root / 'cache'}", "logger=none", "trainer.accelerator=cpu",
                   "extras.print_config=false", "data.train.n_train=300", "data.val.n_val=60",
                   "data.test.test.n_test=60", "trainer.max_epochs=2", f"encoder.pretrained={root / 'tiny_bert'}",
                   "encoder.name=tiny_bert", "encoder.max_length=32", f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}"],
                  output_dir=out)
    train(cfg)
    history = json.loads((out / "training_history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1]  # epoch 0 came from the checkpoint
    assert (out / "metrics.json").is_file()
    assert flags and all(f is True for f in flags), flags


def test_eval_of_a_pickle_payload_runs_nothing(run, tmp_path):
    marker = tmp_path / "marker"
    bad = evil_run(run, tmp_path, marker)
    p = py("router_lab.eval", f"ckpt_path={bad / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={tmp_path / 'e'}",
           tmp=tmp_path)
    one_error_line(p, "not a weights-only checkpoint")
    assert not marker.exists()


def test_route_and_export_of_a_pickle_payload_run_nothing(run, tmp_path, capsys):
    marker = tmp_path / "marker"
    bad = evil_run(run, tmp_path, marker)
    p = py("router_lab.export", f"ckpt_path={bad}", f"out={tmp_path / 'exp'}", tmp=tmp_path)
    one_error_line(p, "not a weights-only checkpoint")
    code, _, err = cli(capsys, route_main, f"router={bad}", "query=hi")
    assert code == 2 and err.count("\n") == 1 and "not a weights-only checkpoint" in err
    assert not marker.exists() and not (tmp_path / "exp").exists()


def test_router_load_of_a_pickle_payload_runs_nothing(run, tmp_path):
    marker = tmp_path / "marker"
    bad = evil_run(run, tmp_path, marker)
    for target in (bad, bad / "checkpoints" / "best.ckpt"):
        with pytest.raises(UserError, match="not a weights-only checkpoint"):
            Router.load(target)
    assert not marker.exists()


# ------------------------------------------------------------------ run dirs: the saved config is data

def tampered_config(run: Path, root: Path, section: str, marker: Path) -> Path:
    dst = root / "tampered_run"
    shutil.copytree(run, dst)
    f = dst / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(f.read_text())
    if section == "data":
        cfg["data"] = {"_target_": "builtins.open", "_args_": [str(marker), "w"]}
    else:
        cfg["model"] = {"_target_": "os.system", "_args_": [f"touch {marker}"]}
    f.write_text(yaml.safe_dump(cfg))
    return dst


def test_eval_does_not_instantiate_a_saved_config(run, tmp_path):
    from conftest import compose
    from router_lab.eval import evaluate_checkpoint

    marker = tmp_path / "marker"
    bad = tampered_config(run, tmp_path, "data", marker)
    p = py("router_lab.eval", f"ckpt_path={bad / 'checkpoints' / 'best.ckpt'}", f"hydra.run.dir={tmp_path / 'e'}",
           tmp=tmp_path)
    one_error_line(p, "data._target_='builtins.open' is not allowed")
    shutil.rmtree(bad)
    bad = tampered_config(run, tmp_path, "model", marker)
    with pytest.raises(UserError, match="_target_='os.system' is not a router_lab router family"):
        evaluate_checkpoint(compose([f"ckpt_path={bad / 'checkpoints' / 'best.ckpt'}"], "eval", tmp_path / "e2"))
    assert not marker.exists()


@pytest.mark.parametrize("section", ["data", "model"])
def test_report_does_not_instantiate_a_saved_config(run, tmp_path, section):
    from router_lab.report import per_query_decisions

    marker = tmp_path / "marker"
    bad = tampered_config(run, tmp_path, section, marker)
    (bad / "predictions.jsonl").unlink()  # per-query decisions must come from the checkpoint + config
    with pytest.raises(UserError, match="not allowed|not a router_lab router family"):
        per_query_decisions(bad)
    p = py("router_lab.report", f"roots={bad}", f"out={tmp_path / 'report'}", tmp=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]  # the report itself only reads values
    assert not marker.exists()


def test_saved_config_may_not_call_resolvers(run, tmp_path, monkeypatch):
    from conftest import compose
    from router_lab.eval import evaluate_checkpoint

    bad = tmp_path / "resolver_run"
    shutil.copytree(run, bad)
    f = bad / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(f.read_text())
    cfg["data"]["cache_dir"] = "${oc.env:ROUTER_LAB_TEST_SECRET}"
    f.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("ROUTER_LAB_TEST_SECRET", CANARY)
    with pytest.raises(UserError, match="calls the resolver 'oc.env'") as e:
        evaluate_checkpoint(compose([f"ckpt_path={bad / 'checkpoints' / 'best.ckpt'}"], "eval", tmp_path / "e"))
    assert CANARY not in str(e.value)


def test_resolvers_in_sections_eval_does_not_use_are_dropped(run, tmp_path, monkeypatch):
    """logger=wandb saves ${oc.env:WANDB_PROJECT,...}: such a run still loads; its data
    cannot reach the dropped sections."""
    from router_lab.runs import load_run_config, load_run_datamodule

    monkeypatch.setenv("ROUTER_LAB_TEST_SECRET", CANARY)
    d = tmp_path / "wandb_run"
    shutil.copytree(run, d)
    f = d / ".hydra" / "config.yaml"
    cfg = yaml.safe_load(f.read_text())
    cfg["logger"] = {"wandb": {"project": "${oc.env:ROUTER_LAB_TEST_SECRET,router_lab}"}}
    f.write_text(yaml.safe_dump(cfg))
    loaded, _ = load_run_config(d)
    assert "logger" not in loaded and loaded.model._target_ == FAMILIES["classifier"]
    cfg["data"]["cache_dir"] = "${logger.wandb.project}"
    f.write_text(yaml.safe_dump(cfg))
    loaded, where = load_run_config(d)
    with pytest.raises(UserError, match="does not resolve") as e:
        load_run_datamodule(loaded, where)
    assert CANARY not in str(e.value)


# ------------------------------------------------------------------ export dirs are data

def test_foreign_target_in_router_yaml_is_never_imported(exported, tmp_path):
    marker = tmp_path / "marker"
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "evil_router_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Evil:\n    decide = None\n")
    bad = tmp_path / "exp"
    shutil.copytree(exported, bad)
    meta = yaml.safe_load((bad / "router.yaml").read_text())
    meta["_target_"] = "evil_router_mod.Evil"
    (bad / "router.yaml").write_text(yaml.safe_dump(meta))
    p = py("router_lab.route", f"router={bad}", "query=hi", tmp=tmp_path, extra_path=mods)
    one_error_line(p, "_target_='evil_router_mod.Evil' is not a router_lab router family")
    assert not marker.exists()
    ctl = subprocess.run([sys.executable, "-c", "import evil_router_mod"], env={**os.environ, "PYTHONPATH": str(mods)})
    assert ctl.returncode == 0 and marker.exists()  # the module was live


def _tamper(exp: Path, what: str) -> None:
    f = exp / "router.yaml"
    meta = yaml.safe_load(f.read_text())
    names = meta["hparams"]["data_info"]["llm_names"]
    if what in ("truncated_weights", "truncated_encoder"):
        w = exp / ("model.safetensors" if what == "truncated_weights" else "encoder/model.safetensors")
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
        return
    if what == "pickled_encoder":  # the backbone's weights as a pickle payload instead of safetensors
        (exp / "encoder" / "model.safetensors").unlink()
        torch.save({"w": Payload(exp.parent / "marker")}, exp / "encoder" / "pytorch_model.bin")
        return
    if what == "invalid_yaml":
        f.write_text("format: [router_lab.export/1\n_target_: {")
        return
    if what == "yaml_list":
        f.write_text("- a\n- b\n")
        return
    if what == "missing_hparam":
        del meta["hparams"]["data_info"]
    elif what == "extra_hparam":
        meta["hparams"]["exec_this"] = "os.system"
    elif what == "cut_llm_list":
        meta["hparams"]["data_info"]["llm_names"] = names[:-1]
        meta["llm_pool"]["llms"] = meta["llm_pool"]["llms"][:-1]
    elif what == "pool_differs":
        meta["llm_pool"]["llms"] = meta["llm_pool"]["llms"][:-1]
    elif what == "encoder_outside":
        meta["hparams"]["encoder"]["pretrained"] = "/etc"
    elif what == "nested_target":
        meta["hparams"]["encoder"]["_target_"] = "os.system"
    f.write_text(yaml.safe_dump(meta))


@pytest.mark.parametrize("what,needle", [
    ("truncated_weights", "not readable safetensors"),
    ("truncated_encoder", "cannot load"),
    ("pickled_encoder", "UnpicklingError"),
    ("invalid_yaml", "not valid YAML"),
    ("yaml_list", "expected a router.yaml"),
    ("missing_hparam", "missing ['data_info']"),
    ("extra_hparam", "unknown ['exec_this']"),
    ("cut_llm_list", "cannot build router_lab.models.classifier.ClassifierRouter"),
    ("pool_differs", "differs from hparams.data_info.llm_names"),
    ("encoder_outside", "expected a directory inside the export dir"),
    ("nested_target", "hparams.encoder._target_='os.system' is not allowed"),
])
def test_tampered_export_is_one_error_line(exported, tmp_path, capsys, what, needle):
    bad = tmp_path / "exp"
    shutil.copytree(exported, bad)
    _tamper(bad, what)
    code, _, err = cli(capsys, route_main, f"router={bad}", "query=hi")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error:") and needle in err, err
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("what,needle", [("truncated", "not a readable checkpoint"),
                                         ("wrong_family", "hyper-parameters do not fit RouterDC")])
def test_corrupt_or_foreign_checkpoint_is_one_error_line(run, tmp_path, capsys, what, needle):
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    ckpt = bad / "checkpoints" / "best.ckpt"
    if what == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 3])
    else:
        f = bad / ".hydra" / "config.yaml"
        cfg = yaml.safe_load(f.read_text())
        cfg["model"]["_target_"] = FAMILIES["routerdc"]
        f.write_text(yaml.safe_dump(cfg))
    code, _, err = cli(capsys, route_main, f"router={bad}", "query=hi")
    assert code == 2 and err.count("\n") == 1 and needle in err, err


# ------------------------------------------------------------------ secrets go where the user's config sends them

@pytest.fixture
def listener():
    """A loopback OpenAI-style upstream that records every request's headers."""
    from fastapi import FastAPI

    from router_lab.serve import run_in_thread

    seen: list[dict] = []
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        seen.append(dict(request.headers))
        return {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    with run_in_thread(app) as url:
        yield url, seen


def export_pointing_at(exported: Path, dst: Path, url: str) -> Path:
    shutil.copytree(exported, dst)
    meta = yaml.safe_load((dst / "router.yaml").read_text())
    names = meta["hparams"]["data_info"]["llm_names"]
    meta["route_map"] = {"endpoints": {n: {"model": "m", "base_url": f"{url}/v1", "api_key_env": "ROUTER_LAB_CANARY"}
                                       for n in names}}
    (dst / "router.yaml").write_text(yaml.safe_dump(meta))
    return dst


def start_serve(args: list[str], tmp: Path, env: dict) -> tuple[subprocess.Popen, str | None]:
    """The proxy in a subprocess: (process, base URL once healthy, or None if it exited)."""
    import httpx

    from test_serve import free_port

    port = free_port()
    full = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **env}
    proc = subprocess.Popen([sys.executable, "-m", "router_lab.serve", *args, f"port={port}"], cwd=REPO, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            return proc, None
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}"
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the proxy neither started nor exited")


def chat_through(base: str):
    import httpx

    return httpx.post(f"{base}/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
               timeout=30)


def test_export_route_map_never_sends_a_secret_without_opt_in(exported, tmp_path, listener):
    url, seen = listener
    exp = export_pointing_at(exported, tmp_path / "exp", url)
    assert Router.load(exp).endpoint(Router.load(exp).llm_names[0]) is None  # a suggestion only
    proc, base = start_serve([f"router={exp}"], tmp_path, {"ROUTER_LAB_CANARY": CANARY})
    try:
        if base is not None:  # it must not have started; if it did, show what it would send
            chat_through(base)
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert not any(CANARY in json.dumps(h) for h in seen) and not seen
    assert base is None and proc.returncode == 2, err[-2000:]
    errors = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "used only with trust_export=true" in errors[0]


def test_trust_export_uses_it_and_logs_the_key_variable_not_its_value(exported, tmp_path, listener):
    url, seen = listener
    exp = export_pointing_at(exported, tmp_path / "exp", url)
    proc, base = start_serve([f"router={exp}", "trust_export=true"], tmp_path, {"ROUTER_LAB_CANARY": CANARY})
    try:
        assert base is not None, proc.communicate()[1][-2000:]
        resp = chat_through(base)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert resp.status_code == 200, (resp.text, err[-2000:])
    assert len(seen) == 1 and seen[0]["authorization"] == f"Bearer {CANARY}"  # the user opted in
    assert "key from $ROUTER_LAB_CANARY" in err and CANARY not in err


# ------------------------------------------------------------------ no command destroys what it did not create

def test_overwrite_refuses_a_dir_it_did_not_write(run, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = cli(capsys, export_main, f"ckpt_path={run}", f"out={mine}", "overwrite=true")
    assert code == 2 and err.count("\n") == 1 and f"no {EXPORT_MARKER} marker" in err
    assert (mine / "notes.txt").read_text() == "keep me"
    # an export dir (it carries the marker) is replaced
    exp = tmp_path / "exp"
    assert cli(capsys, export_main, f"ckpt_path={run}", f"out={exp}")[0] == 0
    (exp / "stale.txt").write_text("old")
    assert cli(capsys, export_main, f"ckpt_path={run}", f"out={exp}", "overwrite=true")[0] == 0
    assert (exp / EXPORT_MARKER).is_file() and not (exp / "stale.txt").exists()


@pytest.mark.parametrize("out", [".", ".."])
def test_overwrite_refuses_the_working_dir_and_its_parent(run, tmp_path, capsys, monkeypatch, out):
    work = tmp_path / "work" / "here"
    work.mkdir(parents=True)
    for d in (work, work.parent):
        (d / "data.txt").write_text("precious")
        (d / EXPORT_MARKER).write_text("planted")  # even a planted marker does not make it replaceable
    monkeypatch.chdir(work)
    code, _, err = cli(capsys, export_main, f"ckpt_path={run}", f"out={out}", "overwrite=true")
    assert code == 2 and err.count("\n") == 1 and "expected a directory of its own" in err
    assert (work / "data.txt").read_text() == "precious" and (work.parent / "data.txt").read_text() == "precious"


@pytest.mark.parametrize("via", ["same_path", "symlink", "hardlink"])
def test_batch_output_equal_to_input_is_refused_before_opening(run, tmp_path, capsys, via):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"query": "What is 2+2?"}) + "\n")
    before = src.read_bytes()
    dst = {"same_path": src, "symlink": tmp_path / "link.jsonl", "hardlink": tmp_path / "hard.jsonl"}[via]
    if via == "symlink":
        dst.symlink_to(src)
    elif via == "hardlink":
        os.link(src, dst)
    code, _, err = cli(capsys, route_main, f"router={run}", "mode=batch", f"input={src}", f"output={dst}")
    assert code == 2 and err.count("\n") == 1 and "is the input" in err
    assert src.read_bytes() == before


def test_two_runs_started_in_the_same_second_keep_both_results(run, tmp_path):
    """Two concurrent runs whose clocks read the same instant, to the microsecond (Hydra's
    ``now`` resolver is pinned in both): two run dirs, two metrics.json."""
    root, logs = run.parent, tmp_path / "logs"
    script = ("import datetime as dt, hydra.core.utils as hu; import router_lab.train as t; "
              "hu.datetime = type('Pinned', (dt.datetime,), "
              "{'now': classmethod(lambda cls, tz=None: dt.datetime(2026, 1, 1, 12, 0, 0, 123456))}); t.main()")
    args = [f"paths.log_dir={logs}", "logger=none", "extras.print_config=false", "train=false", "callbacks=none",
            "data.train.n_train=300", "data.val.n_val=60", "data.test.test.n_test=60",
            f"encoder.pretrained={root / 'tiny_bert'}", "encoder.name=tiny_bert", "encoder.max_length=32"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "ROUTER_LAB_CACHE_DIR": str(root / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    dirs = sorted((logs / "train" / "runs").iterdir())
    assert len(dirs) == 2 and all((d / "metrics.json").is_file() for d in dirs), dirs
    assert {d.name[:26] for d in dirs} == {"2026-01-01_12-00-00_123456"}, dirs  # the same clock reading


@pytest.mark.parametrize("args", [["task_name=../../escaped"], ["-m", "task_name=fine,../../escaped"]])
def test_task_name_that_is_not_a_plain_name_creates_nothing(tmp_path, args):
    logs = tmp_path / "deep" / "logs"
    p = py("router_lab.train", *args, f"paths.log_dir={logs}", tmp=tmp_path)
    one_error_line(p, "not usable as a directory name")
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "-x", "a\\b", "../x"])
def test_path_parts_refuse_separators_and_dots(name):
    from router_lab.files import check_path_part

    with pytest.raises(UserError, match="not usable as a directory name"):
        check_path_part(name, "task_name")
    assert check_path_part("train_v2.1", "task_name") == "train_v2.1"


# ------------------------------------------------------------------ the family allow-list

def test_every_model_config_names_a_registered_family():
    """A new family is its module and its conf/model/ config; only those classes can be loaded."""
    targets = {yaml.safe_load(f.read_text())["_target_"] for f in (REPO / "conf" / "model").glob("*.yaml")}
    assert targets == set(FAMILIES.values()), targets ^ set(FAMILIES.values())
    assert {"classifier", "routerdc", "rankrouter"} <= set(FAMILIES)
