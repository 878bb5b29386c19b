"""python -m router_lab.route: single (free text quoted for Hydra, or from stdin), interactive,
batch (streaming, bad lines), evaluate, multirun; option typos and bad input end in one line
and exit 2; nothing is written in the working directory."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from router_lab.data.loaders.saved import save_records_jsonl
from router_lab.data.loaders.synthetic import load_synthetic
from router_lab.route import main, run_interactive
from conftest import call_cli, route_metrics
from test_api import train_tiny_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("route_run"))


def cli(capsys, *args) -> tuple[int, str, str]:
    return call_cli(capsys, main, *args)


TRICKY = 'What is 2+2, or 3? (a=b, c:d) [x] {y} "quoted" it\'s'


def test_single_prints_the_decision_as_json(run, capsys):
    from router_lab.api import Router

    # Hydra's grammar reads , ' " ( ) [ ] { } = : specially: the text quoted for Hydra (what
    # the shell passes for query="'...'"), with its own quote escaped, arrives unchanged.
    quoted = "'" + TRICKY.replace("'", "\\'") + "'"
    code, out, err = cli(capsys, f"router={run}", f"query={quoted}")
    assert code == 0, err
    d = json.loads(out)
    assert d["llm"] in d["scores"] and 0 <= d["confidence"] <= 1 and "fallback" in d and "cost" in d
    assert d == Router.load(run).route(TRICKY).to_dict()


def test_single_reads_the_query_from_stdin(run, capsys, monkeypatch):
    from router_lab.api import Router

    monkeypatch.setattr(sys, "stdin", io.StringIO(TRICKY))
    code, out, err = cli(capsys, f"router={run}", "query=-")
    assert code == 0, err
    assert json.loads(out) == Router.load(run).route(TRICKY).to_dict()


@pytest.mark.parametrize("args,needle", [
    (["query=hi", "qeury=x"], "Could not override 'qeury'"),
    (["query=hi", "qeury=x"], "did you mean 'query'?"),
    (["query="], "non-empty query"),
    (["mode=nope"], "mode: Input should be 'single', 'interactive', 'batch' or 'evaluate' (got 'nope')"),
    (["query=hi", "batch_size=many"], "batch_size: Input should be a valid integer"),
    (["query=hi", "justaword"], "justaword"),
    (["query=2+2, or 3?"], "Ambiguous value for argument 'query=2+2, or 3?'"),
])
def test_bad_options_are_one_line_errors(run, capsys, args, needle):
    code, _, err = cli(capsys, f"router={run}", *args)
    assert code == 2
    assert err.strip().count("\n") == 0 and err.startswith("error: ") and needle in err


def test_router_dir_missing_a_file_names_it(run, tmp_path, capsys):
    from router_lab.api import Router
    from router_lab.export import export_router

    exp = export_router(Router.load(run), tmp_path / "exp")
    (exp / "model.safetensors").unlink()
    capsys.readouterr()
    code, _, err = cli(capsys, f"router={exp}", "query=hi")
    assert code == 2 and "missing model.safetensors" in err and err.count("\n") == 1


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


BATCH_LINES = [
    json.dumps({"id": "a", "query": "What is 2+2?"}),
    json.dumps({"id": "b", "conversation": [{"role": "user", "content": "hi"}, {"role": "user", "content": "sort a list"}]}),
    "{this is not json",
    "",
    json.dumps({"id": "d", "text": "no query field"}),
    json.dumps({"id": "e", "messages": [{"role": "user", "content": "translate hello"}]}),
    json.dumps({"id": "f", "query": "   "}),
    json.dumps({"id": "g", "query": "last one"}),
]


def test_batch_skips_bad_lines_reporting_their_numbers(run, tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", BATCH_LINES)
    code, _, err = cli(capsys, f"router={run}", "mode=batch", f"input={src}", f"output={tmp_path / 'out.jsonl'}",
                       "batch_size=2")
    assert code == 0
    rows = [json.loads(l) for l in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["line"], r["id"]) for r in rows] == [(1, "a"), (2, "b"), (6, "e"), (8, "g")]
    assert all(r["llm"] in r["scores"] for r in rows)
    assert "line 3: not JSON" in err and "line 5:" in err and "line 7:" in err
    assert json.loads(err.strip().splitlines()[-1])["routed"] == 4


def test_batch_stop_keeps_the_lines_routed_before_the_bad_one(run, tmp_path, capsys):
    src = write_lines(tmp_path / "in.jsonl", BATCH_LINES)
    dst = tmp_path / "out.jsonl"
    code, _, err = cli(capsys, f"router={run}", "mode=batch", f"input={src}", f"output={dst}", "on_error=stop",
                       "batch_size=64")
    assert code == 2
    assert [json.loads(l)["id"] for l in dst.read_text().splitlines()] == ["a", "b"]
    assert err.strip().splitlines()[-1].startswith("error: ") and "line 3" in err.strip().splitlines()[-1]


def test_batch_streams_without_reading_the_whole_input(run, tmp_path):
    """The reader pulls lines lazily: routing of chunk 1 happens before line 200 is read."""
    from router_lab.route import iter_jsonl_queries

    errors: list = []
    pulled = []

    class Lines:
        name = "in-memory"

        def __iter__(self):
            for i in range(200):
                pulled.append(i)
                yield json.dumps({"query": f"q {i}"}) + "\n"

    it = iter_jsonl_queries(Lines(), "skip", errors)
    first = [next(it) for _ in range(3)]
    assert [n for n, _, _ in first] == [1, 2, 3] and len(pulled) == 3


def test_evaluate_scores_and_labels_write_report_and_png(run, tmp_path, capsys):
    recs = load_synthetic("val", n_train=300, n_val=80, n_test=60)
    data = save_records_jsonl(recs, tmp_path / "val.jsonl")
    code, out, _ = cli(capsys, f"router={run}", "mode=evaluate", f"input={data}", f"out={tmp_path / 'eval'}")
    assert code == 0
    m = route_metrics(tmp_path / "eval")
    assert m["n"] == 80 and 0 <= m["accuracy"] <= 1 and 0 <= m["acc_predict"] <= 1 and "cost" in m
    assert m["accuracy"] == m["acc"]  # score data: "chose a best LLM"
    assert (tmp_path / "eval" / "confusion.png").stat().st_size > 1000
    report = (tmp_path / "eval" / "report.txt").read_text()
    assert "per-class report" in report and "confusion matrix" in report
    # each metric on its own labelled line, so the two accuracies can't be confused
    lines = {l.split()[0]: l for l in out.splitlines() if l.strip()}
    assert "mean score of the chosen LLM" in lines["acc_predict"]
    assert "best-scoring LLM" in lines["acc"] and not any(l.startswith("accuracy") for l in out.splitlines())

    # label-only data: category accuracy (the synthetic classifier's categories are its LLMs)
    rows = [{"query": r.query, "label": "frontier-xl" if i % 2 else "tiny-chat-1b"} for i, r in enumerate(recs[:20])]
    labelled = write_lines(tmp_path / "labels.jsonl", [json.dumps(r) for r in rows])
    code, out, _ = cli(capsys, f"router={run}", "mode=evaluate", f"input={labelled}", f"out={tmp_path / 'eval2'}")
    assert code == 0 and "accuracy (category)" in out and "predicted category == the record's label" in out


def test_interactive_loop_ends_on_eof_and_ctrl_c(run):
    from router_lab.api import Router

    router = Router.load(run)
    out = io.StringIO()
    assert run_interactive(router, io.StringIO("What is 2+2?\n\n   \nhello there\n"), out) == 2
    assert out.getvalue().count("-> ") == 2

    class CtrlC(io.StringIO):
        def readline(self, *a):
            raise KeyboardInterrupt

    assert run_interactive(router, CtrlC(), io.StringIO()) == 0


def test_entry_point_interactive_on_closed_stdin_exits_cleanly(run, tmp_path):
    p = subprocess.run([sys.executable, "-m", "router_lab.route", f"router={run}", "mode=interactive"],
                       input="What is 2+2?\n", capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "-> " in p.stdout
    assert not list(tmp_path.iterdir())  # no outputs/, .hydra/ or log file in the working directory


def test_multirun_routes_each_query_and_records_only_the_sweep(run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "-m", f"router={run}", "query=hi,'sort a list, fast'", f"hydra.sweep.dir={tmp_path}/sweep")
    assert code == 0, err
    decisions = json.loads("[" + out.replace("}\n{", "},{") + "]")
    assert len(decisions) == 2 and all(d["llm"] in d["scores"] for d in decisions)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["sweep", "sweep/multirun.yaml"]


@pytest.mark.parametrize("command", ["route", "export", "calibrate", "serve", "report"])
def test_command_root_configs_pass_their_schemas(command):
    """conf/<command>.yaml's documented defaults are valid options (the schema is closed: a key
    the config has and the schema lacks, or the reverse, fails here)."""
    from conftest import compose
    from router_lab import config_schema as S

    schema = {"route": S.RouteConfig, "export": S.ExportConfig, "calibrate": S.CalibrateConfig,
              "serve": S.ServeConfig, "report": S.ReportConfig}[command]
    opts = S.check_config(compose([], config_name=command), schema)
    assert opts.task_name == command


def test_every_loader_option_names_a_registered_loader_with_its_arguments():
    from conftest import compose
    from router_lab.data.sources import resolve_loader

    for f in sorted((REPO / "conf" / "loader").glob("*.yaml")):
        loader = dict(compose([f"loader={f.stem}"], config_name="route").loader)
        assert loader.pop("name") == f.stem
        resolve_loader({"loader": f.stem, "path": "x", **loader}, where=str(f))  # binds, or one DataError line
