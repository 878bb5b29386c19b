"""Bad input at every entry point ends in one clear line: a table of careless-user inputs run
through the real CLIs (their ``main`` with that command line, in this process, so the table
stays fast; two rows also as real ``python -m`` processes), each asserting exit status 2,
exactly one ``error:`` line on stderr naming what was wrong, no traceback, and no result
files (only a training-side run's ``.hydra/`` and log may appear; route, export, calibrate,
serve and report write nothing at all).

To add a case, add a ``Row``: the CLI module, its arguments (``{tmp}``, ``{run}``, ``{file:NAME}``
are filled in; files are made by ``FILES``), and a piece of the expected message.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_api import train_tiny_run

REPO = Path(__file__).resolve().parents[1]


HYDRA = ("hydra.run.dir={tmp}/hydra_run", "paths.log_dir={tmp}/logs")


@dataclass(frozen=True)
class Row:
    cli: str                 # module with main(): router_lab.train, router_lab.route, ...
    args: tuple[str, ...]    # the command line, with {tmp}, {run}, {file:NAME} filled in
    needle: str              # part of the expected one-line message
    allow: tuple[str, ...] = ()  # file names that may appear (besides .hydra/ and *.log)

    @property
    def id(self) -> str:
        shown = [a for a in self.args if a not in HYDRA and a != "synth.progress=false"]
        return f"{self.cli.rsplit('.', 1)[-1]}:{' '.join(shown)[:70]}"


def rec(scores: dict, costs: dict | None = None, score_type: str = "probability", i: int = 0) -> dict:
    return {"id": f"r{i}", "query": f"what is {i} plus {i}?", "task": "math", "scores": scores,
            **({"costs": costs} if costs else {}), "score_type": score_type}


def make_files(d: Path, names: list[str]) -> dict[str, Path]:
    """The bad (and good) input files the rows refer to, over the tiny router's pool."""
    a, b = names[0], names[1]
    good = {n: 0.5 for n in names}
    files = {
        "inf_costs.jsonl": [rec(good, {n: (float("inf") if n == a else 1.0) for n in names}, i=i) for i in range(3)],
        "big_score.jsonl": [rec({**good, a: 7.0}, score_type="multi_attempt", i=i) for i in range(3)],
        "nan_score.jsonl": [rec({**good, b: float("nan")}, i=i) for i in range(3)],
    }
    out = {}
    for name, rows in files.items():
        out[name] = d / name
        out[name].write_text("".join(json.dumps(r) + "\n" for r in rows))  # json writes Infinity / NaN as given
    out["queries.jsonl"] = d / "queries.jsonl"
    out["queries.jsonl"].write_text('{"query": "hi"}\n')
    out["a_file.txt"] = d / "a_file.txt"
    out["a_file.txt"].write_text("not a directory\n")
    out["unknown_llm.yaml"] = d / "unknown_llm.yaml"
    out["unknown_llm.yaml"].write_text("endpoints:\n  no-such-llm: {base_url: 'http://127.0.0.1:9/v1'}\n")
    out["bad.yaml"] = d / "bad.yaml"
    out["bad.yaml"].write_text("endpoints: [unclosed\n")
    out["not_a_ckpt.ckpt"] = d / "not_a_ckpt.ckpt"
    out["not_a_ckpt.ckpt"].write_text("hello")
    out["a_dir"] = d / "a_dir"
    out["a_dir"].mkdir()
    return out


ROWS = [
    # ---- train: config values, config groups and keys, constructor errors, data values
    Row("router_lab.train", (*HYDRA, "trainer.max_epochs=abc"), "trainer.max_epochs"),
    Row("router_lab.train", (*HYDRA, "data.batch_size=0"), "data.batch_size"),
    Row("router_lab.train", (*HYDRA, "seed=abc"), "seed"),
    Row("router_lab.train", (*HYDRA, "model.head_lr=-1"), "model.head_lr"),
    Row("router_lab.train", (*HYDRA, "model.dropout=1.5"), "model.dropout"),
    Row("router_lab.train", (*HYDRA, "trainer.min_epochs=5", "trainer.max_epochs=2"), "min_epochs"),
    Row("router_lab.train", (*HYDRA, "model=nosuch"), "Could not find 'model/nosuch'"),
    Row("router_lab.train", (*HYDRA, "trainer.max_epoch=3"), "did you mean 'max_epochs'"),
    Row("router_lab.train", (*HYDRA, "seed=[1"), "seed=[1"),
    Row("router_lab.train", (*HYDRA, "+data.bogus=1"), "unexpected keyword argument 'bogus'"),
    Row("router_lab.train", (*HYDRA, "data=files", "data.train={file:inf_costs.jsonl}",
                     "+data.source.columns.costs=costs"), "not NaN or infinite"),
    Row("router_lab.train", (*HYDRA, "data=files", "data.train={file:big_score.jsonl}",
                     "data.source.score_type=multi_attempt"), "in [0, 1]"),
    Row("router_lab.train", (*HYDRA, "data=files", "data.train={tmp}/missing.jsonl"), "missing.jsonl"),
    # the old per-file overrides: a key under a file list (OmegaConf's plain ValueError) and a list over a spec
    Row("router_lab.train", (*HYDRA, "data=files", "data.train=[{file:inf_costs.jsonl}]", "data.train.path=x.jsonl"),
        "data.source.<arg>"),
    Row("router_lab.train", (*HYDRA, "data=clinc150", "data.train=[x.json]"), "data.source.<arg>"),
    Row("router_lab.train", (*HYDRA, "data=files", "data.train=[{file:inf_costs.jsonl},3]"),
        "data.train[1]: 3 is neither a file path nor a source spec"),
    # ---- eval
    Row("router_lab.eval", (*HYDRA, "ckpt_path={tmp}/nope.ckpt"), "nope.ckpt"),
    Row("router_lab.eval", (*HYDRA, "ckpt_path={run}/checkpoints/best.ckpt", "data=nosuch"), "data/nosuch"),
    Row("router_lab.eval", (*HYDRA, "ckpt_path={run}/checkpoints/best.ckpt", "trainer.devices=[1"), "trainer.devices"),
    # ---- clusters
    Row("router_lab.clusters", (*HYDRA, "n_clusters=0"), "n_clusters"),
    Row("router_lab.clusters", (*HYDRA, "reduce=umap"), "reduce"),
    Row("router_lab.clusters", (*HYDRA, "encoder=nosuch"), "encoder/nosuch"),
    # ---- synth
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth.n_items=-5"), "synth.n_items"),
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth.turns.min=5"), "synth.turns"),
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth.dedup.threshold=7"), "synth.dedup.threshold"),
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth.concurrency=0"), "synth.concurrency"),
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth.backend=nosuch"), "synth.backend"),
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth=nosuch"), "synth/nosuch"),
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth.backend=openai", "synth.api_key_env=ROUTER_LAB_NO_SUCH_KEY"),
        "ROUTER_LAB_NO_SUCH_KEY"),
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth=agent_tools", "synth.backend=openai", "synth.api_key_env=HOME",
                     "synth.base_url=http://127.0.0.1:9/v1", "synth.retry.base_delay_s=0.001",
                     "synth.retry.max_attempts=2"), "cannot reach",
        allow=("synth_config.json", "requests_log.jsonl", "items.jsonl")),
    Row("router_lab.synth", (*HYDRA, "synth.progress=false", "synth.resume_dir={file:a_file.txt}"), "a_file.txt"),
    # ---- route, every mode (Hydra overrides of conf/route.yaml, like every command)
    Row("router_lab.route", ("router={tmp}/nope", "query=hi"), "nope"),
    Row("router_lab.route", ("router={run}", "qeury=hi"), "did you mean 'query'"),
    Row("router_lab.route", ("router={run}", "+qeury=hi"), "qeury: Extra inputs are not permitted"),
    Row("router_lab.route", ("router={run}", "mode=nope"), "mode: Input should be"),
    Row("router_lab.route", ("router={run}", "query="), "non-empty query"),
    Row("router_lab.route", ("router={run}", "query=hi, there"), "Ambiguous value for argument 'query=hi, there'"),
    Row("router_lab.route", ("router={run}", "query=hi", "batch_size=many"), "batch_size"),
    Row("router_lab.route", ("router={run}", "query=hi", "threads=-1"), "threads"),
    Row("router_lab.route", ("router={run}", "query=hi", "route_map={file:unknown_llm.yaml}"), "no-such-llm"),
    Row("router_lab.route", ("router={run}", "query=hi", "route_map={file:bad.yaml}"), "not valid YAML"),
    Row("router_lab.route", ("router={run}", "query=hi", "route_map={tmp}/none.yaml"), "none.yaml"),
    Row("router_lab.route", ("router={run}", "mode=batch", "input={tmp}/none.jsonl", "output={tmp}/o.jsonl"),
        "none.jsonl"),
    Row("router_lab.route", ("router={run}", "mode=batch", "input={file:queries.jsonl}", "output={file:a_dir}"),
        "is a directory"),
    Row("router_lab.route", ("router={run}", "mode=batch", "input={file:queries.jsonl}",
                             "output={tmp}/o.jsonl", "on_error=maybe"), "on_error"),
    Row("router_lab.route", ("router={run}", "mode=evaluate", "input={file:inf_costs.jsonl}"), "not NaN or infinite"),
    Row("router_lab.route", ("router={run}", "mode=evaluate", "input={file:big_score.jsonl}"), "in [0, 1]"),
    Row("router_lab.route", ("router={run}", "mode=evaluate", "input={file:nan_score.jsonl}"), "no score for LLM"),
    Row("router_lab.route", ("router={run}", "mode=evaluate", "input={file:queries.jsonl}", "loader=nope"),
        "loader/nope"),
    # ---- export, calibrate, report, serve
    Row("router_lab.export", ("ckpt_path={tmp}/nope.ckpt", "out={tmp}/exp"), "nope.ckpt"),
    Row("router_lab.export", ("ckpt_path={run}/checkpoints/best.ckpt", "out={tmp}/exp", "overwrite=perhaps"),
        "overwrite"),
    Row("router_lab.export", ("ckpt_path={run}/checkpoints/best.ckpt", "ot={tmp}/exp"), "Could not override 'ot'"),
    Row("router_lab.calibrate", ("router={tmp}/nope", "input={file:queries.jsonl}"), "nope"),
    Row("router_lab.calibrate", ("router={run}",), "input=FILE"),
    Row("router_lab.calibrate", ("router={run}", "input={file:queries.jsonl}", "target_cost=cheap"), "target_cost"),
    Row("router_lab.calibrate", ("router={run}", "input={file:queries.jsonl}", "target_cost=1", "+loader.sep=x"),
        "does not take"),
    Row("router_lab.report", ("roots={tmp}/nope",), "nope"),
    Row("router_lab.report", ("roots=[{run},{tmp}/nope]",), "nope"),
    Row("router_lab.report", (), "no directories given"),
    Row("router_lab.report", ("roots={run}", "out={file:a_file.txt}"), "existing file"),
    Row("router_lab.report", ("roots={run}", "colour=blue"), "Could not override 'colour'"),
    Row("router_lab.serve", ("router={run}", "port=70000"), "port"),
    Row("router_lab.serve", ("router={run}", "port=abc"), "port"),
    Row("router_lab.serve", ("router={run}", "max_body_mb=0"), "max_body_mb"),
    Row("router_lab.serve", ("router={tmp}/nope",), "nope"),
    Row("router_lab.serve", ("router={run}", "host=no.such.host.invalid"), "host"),
]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> dict:
    from router_lab.api import Router

    root = tmp_path_factory.mktemp("bad_input")
    run = train_tiny_run(root)
    files_dir = root / "files"
    files_dir.mkdir()
    return {"run": run, "files": make_files(files_dir, Router.load(run).llm_names)}


def fill(arg: str, ctx: dict, tmp: Path) -> str:
    for name, p in ctx["files"].items():
        arg = arg.replace("{file:%s}" % name, str(p))
    return arg.replace("{tmp}", str(tmp)).replace("{run}", str(ctx["run"]))


def run_in_process(cli: str, args: list[str], capfd) -> tuple[int | str, str]:
    """``python -m cli args`` without a new interpreter: main() with that command line."""
    main = importlib.import_module(cli if cli != "router_lab.synth" else "router_lab.synth.__main__").main
    argv = sys.argv
    sys.argv = [cli, *args]
    try:  # (conftest's autouse fixture puts Hydra's logging set-up back afterwards)
        main()
        code: int | str = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # noqa: BLE001 - an escaped exception is what this test looks for
        import traceback

        traceback.print_exc()
        code = f"escaped {type(e).__name__}"
    finally:
        sys.argv = argv
    _, err = capfd.readouterr()
    return code, err


def files_under(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def check_one_line(code, err: str, row: Row) -> None:
    errors = [l for l in err.splitlines() if l.startswith("error:")]
    assert code == 2, f"exit {code}; stderr:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
    assert len(errors) == 1, err[-3000:]
    assert row.needle in errors[0], errors[0]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_line_and_exit_2(row: Row, ctx, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("ROUTER_LAB_TRACEBACK", raising=False)
    before = files_under(ctx["run"])
    code, err = run_in_process(row.cli, [fill(a, ctx, tmp_path) for a in row.args], capfd)
    check_one_line(code, err, row)
    # Nothing that looks like a result: only Hydra's record of the config, logs, and what the
    # row allows (e.g. a generator's request log).
    # Commands around a trained router (route, export, ...) write nothing at all but what they are told.
    hydra_run = row.args[:len(HYDRA)] == HYDRA
    new = {f for f in files_under(tmp_path)
           if not (hydra_run and (f.startswith(("hydra_run/.hydra/", "logs/")) or f.endswith(".log")))}
    new = {f for f in new if Path(f).name not in row.allow}
    assert not new, new
    assert files_under(ctx["run"]) == before  # the router's run dir untouched


def test_table_covers_every_entry_point():
    clis = {r.cli for r in ROWS}
    assert len(ROWS) >= 40 and clis >= {"router_lab.train", "router_lab.eval", "router_lab.route", "router_lab.export",
                                         "router_lab.calibrate", "router_lab.clusters", "router_lab.report",
                                         "router_lab.synth", "router_lab.serve"}


@pytest.mark.parametrize("row", [ROWS[0], next(r for r in ROWS if r.cli == "router_lab.synth"),
                                 next(r for r in ROWS if r.cli == "router_lab.route")], ids=lambda r: r.id)
def test_as_real_processes(row: Row, ctx, tmp_path):
    """The same contract from ``python -m``: exit status 2 and one line, from the interpreter."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    p = subprocess.run([sys.executable, "-m", row.cli, *[fill(a, ctx, tmp_path) for a in row.args]],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    check_one_line(p.returncode, p.stderr, row)


def test_hydra_full_error_still_gives_the_full_report(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException):
        run_main_direct = importlib.import_module("router_lab.train").main
        argv, sys.argv = sys.argv, ["router_lab.train", "model=nosuch", *[a.format(tmp=tmp_path) for a in HYDRA]]
        try:
            run_main_direct()
        finally:
            sys.argv = argv


# ---------------------------------------------------------------- Router.load (the Python API)

@pytest.mark.parametrize("route_map,needle", [
    ({"endpoints": {"no-such-llm": {"base_url": "http://127.0.0.1:9/v1"}}}, "unknown LLM(s) ['no-such-llm']"),
    ("{tmp}/none.yaml", "none.yaml"),
    ("{file:bad.yaml}", "not valid YAML"),
    ({"policy": {"confidence_threshold": "high", "fallback_llm": "x"}}, "confidence_threshold is 'high'"),
    ({"policy": {"cost_lambda": -1}}, "cost_lambda is -1"),
    ({"endpoints": [{"base_url": "http://127.0.0.1:9/v1"}]}, "endpoints is a list"),
    ({"policy": {"fallback_llm": 3}}, "fallback_llm is 3"),
])
def test_router_load_bad_route_map_is_one_line(ctx, tmp_path, route_map, needle):
    from router_lab.api import Router
    from router_lab.errors import UserError

    rm = fill(route_map, ctx, tmp_path) if isinstance(route_map, str) else route_map
    with pytest.raises(UserError) as e:
        Router.load(ctx["run"], route_map=rm)
    assert needle in str(e.value) and "\n" not in str(e.value).strip()


def test_router_load_missing_path_is_one_line(tmp_path):
    from router_lab.api import Router
    from router_lab.errors import UserError

    with pytest.raises(UserError, match="no such file"):
        Router.load(tmp_path / "nope")


# ---------------------------------------------------------------- batch and interactive: bad lines, good ones kept

def test_batch_skips_bad_lines_with_one_error_each_and_keeps_the_good_ones(ctx, tmp_path, capfd):
    good = [{"id": "g1", "query": "What is 2+2?"},
            {"id": "g2", "messages": [{"role": "user", "content": [{"type": "text", "text": "Translate hello"}]}]}]
    lines = [json.dumps(good[0]).encode(),
             json.dumps({"id": "b1", "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}).encode(),
             json.dumps({"id": "b2", "messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]}).encode(),
             b'{"id": "b3", "query": "caf\xe9 \xff"}',  # Latin-1 bytes: not UTF-8
             b"[" * 50_000 + b"]" * 50_000,
             json.dumps(good[1]).encode()]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    code, err = run_in_process("router_lab.route", [f"router={ctx['run']}", "mode=batch", f"input={src}",
                                                    f"output={out}"], capfd)
    assert code == 0 and "Traceback" not in err, err[-3000:]
    errors = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(errors) == 4, errors
    by_line = {int(l.split("line ")[1].split(":")[0]): l for l in errors}
    assert "messages[0].content[0].text is 5" in by_line[2] and "content[0].text is null" in by_line[3]
    assert "not valid UTF-8 (byte 0xe9" in by_line[4] and "nested too deeply" in by_line[5]
    routed = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["id"] for r in routed] == ["g1", "g2"] and [r["line"] for r in routed] == [1, 6]


def test_interactive_bad_bytes_are_one_line_and_the_session_goes_on(ctx):
    import io

    from router_lab.api import Router
    from router_lab.route import run_interactive

    class Stdin(io.TextIOWrapper):
        def isatty(self) -> bool:
            return False

    inp = Stdin(io.BytesIO(b"What is 2+2?\n\xff\xfe broken\nTranslate hello\n"), encoding="utf-8")
    out = io.StringIO()
    n = run_interactive(Router.load(ctx["run"]), inp, out)
    errors = [l for l in out.getvalue().splitlines() if "error:" in l]
    assert n == 2 and len(errors) == 1 and "not valid UTF-8 (byte 0xff)" in errors[0], out.getvalue()


# ---------------------------------------------------------------- the schemas accept every shipped config

SHIPPED = ([[f"+experiment={p.stem}"] for p in sorted((REPO / "conf" / "experiment").glob("*.yaml"))]
           + [[f"model={p.stem}", f"trainer={t}"] for p in sorted((REPO / "conf" / "model").glob("*.yaml"))
              for t in ("cpu", "gpu", "ddp")]
           + [[f"data={p.stem}"] for p in sorted((REPO / "conf" / "data").glob("*.yaml"))
              if p.stem != "synthetic_generated"]
           + [[f"debug={p.stem}"] for p in sorted((REPO / "conf" / "debug").glob("*.yaml"))]
           + [[f"encoder={p.stem}"] for p in sorted((REPO / "conf" / "encoder").glob("*.yaml"))])


@pytest.mark.parametrize("overrides", SHIPPED, ids=lambda o: " ".join(o))
def test_every_shipped_train_config_passes_the_schema(overrides, tmp_path):
    from conftest import compose
    from router_lab.config_schema import TrainConfig, check_config

    check_config(compose(overrides, output_dir=tmp_path), TrainConfig)


def test_a_missing_mandatory_value_is_one_line(tmp_path):
    from conftest import compose
    from router_lab.config_schema import TrainConfig, check_config
    from router_lab.errors import UserError

    with pytest.raises(UserError, match=r"data\.train: .*data\.path"):
        check_config(compose(["data=synthetic_generated"], output_dir=tmp_path), TrainConfig)
