"""Loaders on fixtures written here (every bad-input case included), and on ../shared/data when present.

    python -m pytest tests/test_loaders.py -q
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from router_lab.data.loaders import LOADERS
from router_lab.data.loaders.arena import load_arena
from router_lab.data.loaders.clinc150 import load_clinc150
from router_lab.data.loaders.common import check_same_llms, conversation_cell
from router_lab.data.loaders.routerbench import final_question, load_routerbench
from router_lab.data.loaders.routerdc import load_routerdc_json, routerdc_score_type, routerdc_task
from router_lab.data.loaders.saved import load_records_jsonl, load_saved_dataset, save_records_jsonl
from router_lab.data.loaders.table import load_table
from router_lab.data.records import DataError, RoutingRecord, dataset_to_records, records_to_dataset

from conftest import SHARED_DATA  # noqa: E402


def needs_shared(sub: str):
    return pytest.mark.skipif(not (SHARED_DATA / sub).is_dir(), reason=f"real data not found at {SHARED_DATA / sub}")

POOL = ["llm-a", "llm-b"]


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def write_jsonl(path: Path, objs) -> Path:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


def raises_naming(*parts: str):
    """pytest.raises(DataError) whose one-line message must contain every part."""

    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(DataError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            out = self._ctx.__exit__(*exc)
            msg = str(self.info.value)
            assert "\n" not in msg, msg
            for part in parts:
                assert part in msg, f"{part!r} not in {msg!r}"
            return out

    return _Check()


def test_registry_names():
    from router_lab.data.sources import resolve_loader

    assert sorted(LOADERS) == sorted(["routerdc", "clinc150", "table", "records", "hf_disk", "routerbench", "arena",
                                      "llmrouter", "synthetic"])
    assert resolve_loader({"loader": "routerdc", "path": "x.json"}) == (load_routerdc_json, {"path": "x.json"})
    with raises_naming("data.train: loader 'nope' is unknown", "routerdc"):
        resolve_loader({"loader": "nope"}, where="data.train")


# ---------------------------------------------------------------- RouterDC

def routerdc_items(n: int = 3, cluster: bool = True) -> list[dict]:
    return [
        {"question": f"q{i}", "scores": {"llm-b": 0.25 * i, "llm-a": 1.0}, **({"cluster_id": i % 2} if cluster else {})}
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "stem, task, score_type",
    [
        ("gsm8k-train", "gsm8k", "multi_attempt"),
        ("gsm8k-test", "gsm8k", "multi_attempt"),
        ("humaneval_test", "humaneval", "multi_attempt"),
        ("mbpp", "mbpp", "multi_attempt"),
        ("javascript", "javascript", "multi_attempt"),
        ("mmlu_train", "mmlu", "probability"),
        ("arc_challenge_train", "arc_challenge", "probability"),
        ("MATH_prealgebra", "MATH_prealgebra", "probability"),
        ("ceval", "ceval", "probability"),
        ("cmmlu_test", "cmmlu", "probability"),
    ],
)
def test_routerdc_task_and_score_type(stem, task, score_type):
    assert routerdc_task(f"/x/{stem}.json") == task
    assert routerdc_score_type(task) == score_type


def test_routerdc_loads_with_stable_ids_and_pool_order(tmp_path):
    path = write_json(tmp_path / "gsm8k-train.json", routerdc_items())
    recs = load_routerdc_json(path)
    assert [r.query for r in recs] == ["q0", "q1", "q2"]
    assert {r.task for r in recs} == {"gsm8k"} and {r.score_type for r in recs} == {"multi_attempt"}
    assert list(recs[0].scores) == ["llm-b", "llm-a"]  # the file's order when no pool is given
    assert [r.cluster_id for r in recs] == [0, 1, 0]
    assert [r.id for r in recs] == [r.id for r in load_routerdc_json(path)]
    assert len({r.id for r in recs}) == 3

    pooled = load_routerdc_json(path, llm_names=POOL, task="math", score_type="probability")
    assert list(pooled[2].scores) == POOL and pooled[2].scores == {"llm-a": 1.0, "llm-b": 0.5}
    assert pooled[0].task == "math" and pooled[0].score_type == "probability"


def test_routerdc_n_items_truncates_or_cycles(tmp_path):
    path = write_json(tmp_path / "mmlu_train.json", routerdc_items(3))
    assert [r.query for r in load_routerdc_json(path, n_items=2)] == ["q0", "q1"]
    recs = load_routerdc_json(path, n_items=7)
    assert [r.query for r in recs] == ["q0", "q1", "q2", "q0", "q1", "q2", "q0"]
    base = recs[0].id
    assert [r.id for r in recs[::3]] == [base, f"{base}#1", f"{base}#2"]
    assert len({r.id for r in recs}) == 7
    with raises_naming("mmlu_train.json", "n_items"):
        load_routerdc_json(path, n_items=0)


def test_routerdc_require_cluster_id(tmp_path):
    items = routerdc_items(3)
    del items[1]["cluster_id"]
    path = write_json(tmp_path / "mmlu_train.json", items)
    assert load_routerdc_json(path)[1].cluster_id is None
    with raises_naming("mmlu_train.json item 1", "cluster_id", "python -m router_lab.clusters"):
        load_routerdc_json(path, require_cluster_id=True)


def _without_scores(items):
    del items[1]["scores"]
    return items


def _with_score(value):
    def edit(items):
        items[1]["scores"]["llm-a"] = value
        return items
    return edit


def _with_extra_llm(items):
    items[1]["scores"]["llm-z"] = 0.5
    return items


def _without_llm(items):
    del items[1]["scores"]["llm-a"]
    return items


@pytest.mark.parametrize(
    "edit, parts",
    [
        (_without_scores, ["item 1", "no scores"]),
        (_with_score(float("nan")), ["item 1", "'llm-a'", "nan", ">= 0"]),
        (_with_score(-0.5), ["item 1", "'llm-a'", "-0.5", ">= 0"]),
        (_with_score("high"), ["item 1", "'llm-a'", ">= 0"]),
        (_with_extra_llm, ["item 1", "llm-z"]),
        (_without_llm, ["item 1", "llm-a"]),
        (lambda items: [], ["no records"]),
        (lambda items: {"items": items}, ["expected a list"]),
        (lambda items: items[:1] + [{"question": "", "scores": {}}], ["item 1", "question"]),
        (lambda items: items[:1] + [{**items[1], "cluster_id": "a"}], ["item 1", "cluster_id"]),
    ],
)
def test_routerdc_bad_items(tmp_path, edit, parts):
    path = write_json(tmp_path / "mmlu_test.json", edit(routerdc_items(3)))
    with raises_naming("mmlu_test.json", *parts):
        load_routerdc_json(path)


def test_routerdc_pool_mismatch_and_bad_files(tmp_path):
    path = write_json(tmp_path / "mmlu_test.json", routerdc_items(2))
    with raises_naming("mmlu_test.json item 0", "llm-b", "llm-c"):
        load_routerdc_json(path, llm_names=["llm-a", "llm-c"])
    with raises_naming("nothing.json", "no such file"):
        load_routerdc_json(tmp_path / "nothing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('[\n{"question": "q", "scores": {"a": 1}},\n{"question": }\n]')
    with raises_naming("bad.json", "not valid JSON", "line 3 column"):
        load_routerdc_json(bad)


def test_check_same_llms():
    assert check_same_llms({"a.json": ["x", "y"], "b.json": ["y", "x"]}) == ["x", "y"]
    with raises_naming("a.json", "c.json", "'z'"):
        check_same_llms({"a.json": ["x", "y"], "b.json": ["x", "y"], "c.json": ["x", "z"]})


# ---------------------------------------------------------------- CLINC150

@pytest.fixture
def clinc_file(tmp_path) -> Path:
    write_json(tmp_path / "domains.json", {"banking": ["balance", "transfer"], "travel": ["translate"]})
    return write_json(
        tmp_path / "clinc150_train_val.json",
        {
            "train": [["how much money do i have", "balance"], ["say hi in french", "translate"]],
            "val": [["move 5 dollars", "transfer"]],
            "oos_train": [["what is the meaning of life", "oos"]],
            "oos_val": [],
        },
    )


def test_clinc150_labels_and_oos(clinc_file):
    recs = load_clinc150(clinc_file)
    assert [(r.task, r.label, r.scores) for r in recs] == [("banking", "banking", {}), ("travel", "travel", {})]
    recs = load_clinc150(clinc_file, label="intent", include_oos=True)
    assert [(r.task, r.label) for r in recs] == [("banking", "balance"), ("travel", "translate"), ("oos", "oos")]
    assert len({r.id for r in recs}) == 3
    assert [r.label for r in load_clinc150(clinc_file, split="val", label="intent")] == ["transfer"]


def test_clinc150_bad_inputs(clinc_file, tmp_path):
    with raises_naming("clinc150_train_val.json", "'topic'", "'domain' or 'intent'"):
        load_clinc150(clinc_file, label="topic")
    with raises_naming("clinc150_train_val.json", "'test'"):
        load_clinc150(clinc_file, split="test")
    data = json.loads(clinc_file.read_text())
    data["train"].append(["book a flight", "book_flight"])
    data["train"].append(["no intent"])
    write_json(clinc_file, data)
    with raises_naming("clinc150_train_val.json train item 2", "'book_flight'", "domains.json"):
        load_clinc150(clinc_file)
    with raises_naming("elsewhere.json", "no such file"):
        load_clinc150(clinc_file, domains_path=tmp_path / "elsewhere.json")


# ---------------------------------------------------------------- generic tables

def test_table_jsonl_with_score_dicts(tmp_path):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"id": "r1", "query": "hi", "task": "chat", "scores": {"llm-b": 0.5, "llm-a": 1.0}, "costs": {"llm-a": 2.0, "llm-b": 1.0}},
            {"query": "2+2?", "scores": {"llm-a": 0.0, "llm-b": 1.0}, "label": "math", "cluster_id": 3,
             "score_type": "multi_attempt"},
        ],
    )
    r1, r2 = load_table(path, llm_names=POOL)
    assert (r1.id, r1.task, r1.scores, r1.costs) == ("r1", "chat", {"llm-a": 1.0, "llm-b": 0.5}, {"llm-a": 2.0, "llm-b": 1.0})
    assert list(r1.scores) == POOL
    assert (r2.task, r2.label, r2.cluster_id, r2.score_type, r2.costs) == ("mixed", "math", 3, "multi_attempt", None)
    assert r2.id == load_table(path)[1].id


def test_table_column_mapping_and_label_only(tmp_path):
    path = write_jsonl(
        tmp_path / "intents.jsonl",
        [{"text": "hello", "intent": "greet"}, {"turns": [{"role": "user", "content": "bye"}], "intent": "leave"}],
    )
    recs = load_table(path, columns={"query": "text", "label": "intent", "conversation": "turns"}, task="intents")
    assert [(r.query, r.label, r.scores, r.task) for r in recs] == [
        ("hello", "greet", {}, "intents"), ("user: bye", "leave", {}, "intents"),
    ]
    assert recs[1].conversation == [{"role": "user", "content": "bye"}]
    with raises_naming("intents.jsonl", "'nonsense'"):
        load_table(path, columns={"nonsense": "text"})


def test_table_csv_with_score_and_cost_columns(tmp_path):
    path = tmp_path / "bench.csv"
    pd.DataFrame(
        {"query": ["a", "b"], "task": ["t", "t"], "acc_a": [1.0, 0.0], "acc_b": [0.5, 1.0], "usd_a": [0.1, 0.2], "usd_b": [1.0, 2.0]}
    ).to_csv(path, index=False)
    recs = load_table(path, score_columns={"llm-a": "acc_a", "llm-b": "acc_b"}, cost_columns={"llm-a": "usd_a", "llm-b": "usd_b"})
    assert [r.scores for r in recs] == [{"llm-a": 1.0, "llm-b": 0.5}, {"llm-a": 0.0, "llm-b": 1.0}]
    assert recs[1].costs == {"llm-a": 0.2, "llm-b": 2.0}
    with raises_naming("bench.csv", "'acc_c'", "'llm-c'"):
        load_table(path, score_columns={"llm-c": "acc_c"})

    pd.DataFrame({"query": ["a", "b"], "acc_a": [1.0, float("nan")]}).to_csv(path, index=False)
    with raises_naming("bench.csv row 1", "'llm-a'", "nan"):
        load_table(path, score_columns={"llm-a": "acc_a"})


def test_table_parquet_with_conversations(tmp_path):
    path = tmp_path / "chats.parquet"
    pd.DataFrame(
        {
            "id": ["c1", "c2"],
            "conversation": [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]],
            "scores": [{"llm-a": 1.0, "llm-b": 0.0}, {"llm-a": 0.5, "llm-b": 0.5}],
        }
    ).to_parquet(path)
    recs = load_table(path)
    assert recs[1].conversation == [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    assert recs[1].query == "user: x\nassistant: y" and recs[0].scores == {"llm-a": 1.0, "llm-b": 0.0}


def test_table_bad_inputs(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "scores": {"x": 1}}\n\n{"query": "b", scores}\n')
    with raises_naming("bad.jsonl line 3", "not valid JSON"):
        load_table(bad)
    noq = write_jsonl(tmp_path / "noq.jsonl", [{"query": "a"}, {"label": "x"}])
    with raises_naming("noq.jsonl line 2", "'query'", "'conversation'"):
        load_table(noq)
    partial = write_jsonl(tmp_path / "partial.jsonl", [{"query": "a", "scores": {"x": 1}}, {"query": "b"}])
    with raises_naming("partial.jsonl line 2", "no scores"):
        load_table(partial)
    neg = write_jsonl(tmp_path / "neg.jsonl", [{"query": "a", "scores": {"x": -1}}])
    with raises_naming("neg.jsonl line 1", "'x'", ">= 0"):
        load_table(neg)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with raises_naming("empty.jsonl", "no records"):
        load_table(empty)
    with raises_naming("data.txt", "format"):
        load_table(write_json(tmp_path / "data.txt", []))
    with raises_naming("missing.csv", "no such file"):
        load_table(tmp_path / "missing.csv")


# ---------------------------------------------------------------- own formats

def sample_records() -> list[RoutingRecord]:
    return [
        RoutingRecord(id="a", query="2+2?", task="math", scores={"llm-a": 1.0, "llm-b": 0.5},
                      costs={"llm-a": 0.25, "llm-b": 1.0}, label="easy", cluster_id=2, score_type="multi_attempt"),
        RoutingRecord(id="b", conversation=[{"role": "user", "content": "hi"}], task="chat", scores={"llm-a": 0.0, "llm-b": 1.0}),
    ]


def test_records_jsonl_round_trip_is_atomic(tmp_path):
    path = tmp_path / "out" / "records.jsonl"
    save_records_jsonl(sample_records(), path)
    assert load_records_jsonl(path) == sample_records()
    assert not (tmp_path / "out" / "records.jsonl.tmp").exists()
    with raises_naming("records.jsonl", "NaN"):
        save_records_jsonl([RoutingRecord(id="n", query="q", scores={"x": math.nan})], path)
    assert load_records_jsonl(path) == sample_records()  # a failed save leaves the old file whole


def test_records_jsonl_bad_lines(tmp_path):
    path = tmp_path / "records.jsonl"
    good = json.dumps({"id": "a", "query": "q", "scores": {"x": 1.0}})
    path.write_text(good + "\n" + json.dumps({"id": "b", "query": "q", "colour": "red"}) + "\n")
    with raises_naming("records.jsonl line 2", "'colour'"):
        load_records_jsonl(path)
    path.write_text(good + "\n" + json.dumps({"id": "b", "query": "q", "scores": {"x": -2}}) + "\n")
    with raises_naming("records.jsonl line 2", "'x'", ">= 0"):
        load_records_jsonl(path)
    path.write_text(good + "\n" + good + "\n")
    with raises_naming("records.jsonl", "'a'", "unique"):
        load_records_jsonl(path)
    path.write_text(good + "\n" + json.dumps({"id": "c", "query": "q", "score_type": "vibes"}) + "\n")
    with raises_naming("records.jsonl line 2", "'vibes'"):
        load_records_jsonl(path)


def test_dataset_round_trip_and_hf_disk(tmp_path):
    records = sample_records()
    ds = records_to_dataset(records, POOL)
    assert dataset_to_records(ds) == records
    ds.save_to_disk(str(tmp_path / "ds"))
    assert load_saved_dataset(tmp_path / "ds") == records
    with raises_naming("nowhere", "no such directory"):
        load_saved_dataset(tmp_path / "nowhere")
    (tmp_path / "junk").mkdir()
    with raises_naming("junk", "not a saved"):
        load_saved_dataset(tmp_path / "junk")


# ---------------------------------------------------------------- RouterBench

def routerbench_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["mmlu.0", "gsm.1"],
            "prompt": ["['What is 2+2?']", "Plain prompt [with brackets"],
            "eval_name": ["mmlu", "gsm8k"],
            "gpt-4": [1.0, 0.0],
            "llama": [0.0, 1.0],
            "gpt-4|model_response": ["4", "x"],
            "llama|model_response": ["5", "y"],
            "gpt-4|total_cost": [0.03, 0.04],
            "llama|total_cost": [0.001, 0.002],
            "oracle_model_to_route_to": ["gpt-4", "llama"],
        }
    )


@pytest.mark.parametrize("suffix", ["csv", "pkl"])
def test_routerbench_csv_and_pickle(tmp_path, suffix):
    path = tmp_path / f"routerbench.{suffix}"
    df = routerbench_frame()
    df.to_csv(path, index=False) if suffix == "csv" else df.to_pickle(path)
    r0, r1 = load_routerbench(path, allow_pickle=suffix == "pkl")
    assert (r0.id, r0.query, r0.task) == ("mmlu.0", "What is 2+2?", "mmlu")
    assert r1.query == "Plain prompt [with brackets"
    assert r0.scores == {"gpt-4": 1.0, "llama": 0.0} and r1.costs == {"gpt-4": 0.04, "llama": 0.002}
    assert list(load_routerbench(path, llm_names=["llama"], allow_pickle=True)[0].scores) == ["llama"]


def test_routerbench_bad_inputs(tmp_path):
    path = tmp_path / "routerbench.csv"
    routerbench_frame().drop(columns=["gpt-4|total_cost"]).to_csv(path, index=False)
    with raises_naming(f"{path}: model 'gpt-4' has no 'gpt-4|total_cost' column"):
        load_routerbench(path)
    assert list(load_routerbench(path, require_costs=False)[0].scores) == ["gpt-4", "llama"]
    with raises_naming("routerbench.csv", "'claude'"):
        load_routerbench(path, llm_names=["claude"], require_costs=False)

    df = routerbench_frame()
    df.loc[1, "llama"] = -1.0
    df.to_csv(path, index=False)
    with raises_naming("routerbench.csv row 1", "'llama'", "-1.0", "[0, 1]"):
        load_routerbench(path)
    routerbench_frame().drop(columns=["eval_name"]).to_csv(path, index=False)
    with raises_naming("routerbench.csv", "'eval_name'"):
        load_routerbench(path)


def _rb_with_missing(path: Path) -> Path:
    """Four rows; row 1 lacks llama's score and row 3 repeats row 2's sample_id."""
    df = pd.concat([routerbench_frame(), routerbench_frame().assign(sample_id=["x.2", "x.2"])], ignore_index=True)
    df.loc[1, "llama"] = np.nan
    df.to_csv(path, index=False)
    return path


def test_routerbench_missing_score_policies(tmp_path, caplog):
    path = _rb_with_missing(tmp_path / "rb.csv")
    with raises_naming("rb.csv row 1", "'gsm.1'", "no score for LLM(s) ['llama'] (empty or nan)", "on_missing_score"):
        load_routerbench(path)
    with caplog.at_level(logging.WARNING, logger="router_lab.data.loaders"):
        kept = load_routerbench(path, on_missing_score="drop_record", on_duplicate_id="suffix")
    assert [r.id for r in kept] == ["mmlu.0", "x.2", "x.2#1"]
    assert "dropped 1 of 4 record(s)" in caplog.text and "{'llama': 1}" in caplog.text
    masked = load_routerbench(path, on_missing_score="mask", on_duplicate_id="keep_first")
    assert [r.id for r in masked] == ["mmlu.0", "gsm.1", "x.2"]
    assert masked[1].scores == {"gpt-4": 0.0} and masked[1].costs == {"gpt-4": 0.04, "llama": 0.002}
    with raises_naming("rb.csv row 3", "'x.2'", "row 2", "on_duplicate_id"):
        load_routerbench(path, on_missing_score="drop_record")
    with raises_naming("on_missing_score='skip'"):
        load_routerbench(path, on_missing_score="skip")


def test_routerbench_score_outside_0_1_is_one_error_line(tmp_path):
    """A RouterBench score is per-prompt performance in [0, 1]; a 2.0 would pass as a
    'probability' score and put the oracle at 100 %."""
    df = routerbench_frame()
    df.loc[1, "llama"] = 2.0
    df.to_csv(tmp_path / "rb.csv", index=False)
    with raises_naming("rb.csv row 1", "'llama'", "2.0", "[0, 1]"):
        load_routerbench(tmp_path / "rb.csv")


def test_table_loader_shares_the_missing_score_policy(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"id": "a", "query": "q1", "scores": {"x": 1, "y": 0}},
            {"id": "b", "query": "q2", "scores": {"x": None, "y": 1}},
            {"id": "a", "query": "q3", "scores": {"x": 0, "y": 1}}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with raises_naming("t.jsonl line 2", "'b'", "['x']"):
        load_table(path)
    recs = load_table(path, on_missing_score="drop_record", on_duplicate_id="suffix")
    assert [r.id for r in recs] == ["a", "a#1"]


def test_final_question_strips_few_shot_exemplars(tmp_path):

    prompt = "Q: 1+1?\nA) 2\nAnswer:\nA\n\nQ: 2+2?\nA) 4\nAnswer:\nA\n\nQ: 3+3?\nA) 6\nAnswer:"
    assert final_question(prompt) == "Q: 3+3?\nA) 6\nAnswer:"
    assert final_question("one block only") == "one block only"
    df = routerbench_frame()
    df.loc[0, "prompt"] = repr([prompt])
    df.to_csv(tmp_path / "rb.csv", index=False)
    assert load_routerbench(tmp_path / "rb.csv", strip_few_shot=True)[0].query == "Q: 3+3?\nA) 6\nAnswer:"
    assert load_routerbench(tmp_path / "rb.csv")[0].query == prompt


class _Payload:
    """Unpickling this creates the marker file: a pickle's code runs when it is read."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_routerbench_pickle_is_refused_without_opt_in(tmp_path):
    import pickle
    import subprocess
    import sys

    marker = tmp_path / "PWNED"
    evil = tmp_path / "routerbench.pkl"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    with raises_naming("routerbench.pkl", "allow_pickle"):
        load_routerbench(evil)
    assert not marker.exists()
    # The real entry point: one `error:` line naming the opt-in, exit 2, nothing ran.
    p = subprocess.run([sys.executable, "-m", "router_lab.train", "data=routerbench", f"data.train={evil}",
                        f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}", "logger=none",
                        "extras.print_config=false"], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert p.returncode == 2, p.stderr[-2000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "allow_pickle" in errors[0] and "Traceback" not in p.stderr
    assert not marker.exists()


# ---------------------------------------------------------------- Chatbot Arena

def arena_rows() -> list[dict]:
    def conv(q):
        return [{"role": "user", "content": q}, {"role": "assistant", "content": "..."}, {"role": "user", "content": "more"}]

    return [
        {"question_id": "q1", "model_a": "gpt-4", "model_b": "llama", "winner": "model_a", "conversation_a": conv("first")},
        {"question_id": "q2", "model_a": "gpt-4", "model_b": "llama", "winner": "model_b", "conversation_a": conv("second")},
        {"question_id": "q3", "model_a": "llama", "model_b": "vicuna", "winner": "tie", "conversation_a": conv("third")},
        {"question_id": "q3", "model_a": "gpt-4", "model_b": "vicuna", "winner": "tie (bothbad)", "conversation_a": conv("third")},
    ]


@pytest.mark.parametrize("fmt", ["parquet", "json", "jsonl"])
def test_arena_formats_and_scores(tmp_path, fmt):
    path = tmp_path / f"arena.{fmt}"
    rows = arena_rows()
    if fmt == "parquet":
        pd.DataFrame(rows).to_parquet(path)
    elif fmt == "json":
        write_json(path, rows)
    else:
        write_jsonl(path, rows)
    recs = load_arena(path)
    assert [r.scores for r in recs] == [
        {"gpt-4": 1.0, "llama": 0.0}, {"gpt-4": 0.0, "llama": 1.0}, {"llama": 0.5, "vicuna": 0.5}, {"gpt-4": 0.0, "vicuna": 0.0},
    ]
    assert [r.id for r in recs] == ["q1", "q2", "q3", "q3#1"]
    assert [r.label for r in recs] == ["model_a", "model_b", "tie", "tie (bothbad)"]
    assert recs[0].query == "first" and recs[0].conversation == [{"role": "user", "content": "first"}]
    assert {r.task for r in recs} == {"arena"}


def test_arena_prompt_column_and_stable_ids(tmp_path):
    rows = [{"model_a": "x", "model_b": "y", "winner": "model_a", "prompt": '["hello", "again"]'}]
    path = write_jsonl(tmp_path / "arena.jsonl", rows)
    (rec,) = load_arena(path)
    assert rec.query == "hello" and rec.id == load_arena(path)[0].id
    path = write_jsonl(tmp_path / "arena2.jsonl", [{**rows[0], "text": "custom"}])
    assert load_arena(path, prompt_column="text")[0].query == "custom"


def test_arena_unknown_models(tmp_path, caplog):
    path = tmp_path / "arena.parquet"
    pd.DataFrame(arena_rows()).to_parquet(path)
    with caplog.at_level(logging.WARNING, logger="router_lab.data.loaders"):
        recs = load_arena(path, llm_names=["llama", "gpt-4"])
    assert [r.id for r in recs] == ["q1", "q2"] and list(recs[0].scores) == ["llama", "gpt-4"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dropped 2 row(s)" in warnings[0] and "vicuna" in warnings[0]
    with raises_naming("arena.parquet row 2", "'vicuna'"):
        load_arena(path, llm_names=["llama", "gpt-4"], unknown_models="fail")
    with raises_naming("arena.parquet", "no records", "dropped"):
        load_arena(path, llm_names=["claude"])


@pytest.mark.parametrize(
    "change, parts",
    [
        ({"winner": "model_c"}, ["line 2", "'winner'", "'model_c'"]),
        ({"model_b": "gpt-4"}, ["line 2", "'gpt-4'", "different"]),
        ({"conversation_a": [{"role": "assistant", "content": "x"}]}, ["line 2", "user turn"]),
        ({"conversation_a": None}, ["line 2", "'conversation_a'", "'prompt'"]),
    ],
)
def test_arena_bad_rows(tmp_path, change, parts):
    rows = arena_rows()
    rows[1].update(change)
    path = write_jsonl(tmp_path / "arena.jsonl", rows)
    with raises_naming("arena.jsonl", *parts):
        load_arena(path)


def test_arena_numpy_conversation_cells():
    # parquet hands back numpy arrays of dicts; the loader must see plain lists

    cell = np.array([{"role": "user", "content": "hi"}], dtype=object)
    assert conversation_cell(cell, "w", "conversation_a") == [{"role": "user", "content": "hi"}]


# ---------------------------------------------------------------- shared data

@needs_shared("routerdc")
def test_shared_routerdc_split2():
    split2 = SHARED_DATA / "routerdc" / "split2_model7"
    cluster = SHARED_DATA / "routerdc" / "split2_model7_cluster"
    mmlu = load_routerdc_json(cluster / "mmlu_train.json", require_cluster_id=True)
    assert len(mmlu) == 2000 and all(r.cluster_id is not None for r in mmlu)
    assert {r.task for r in mmlu} == {"mmlu"} and mmlu[0].score_type == "probability"
    gsm = load_routerdc_json(split2 / "gsm8k-test.json")
    assert gsm[0].task == "gsm8k" and gsm[0].score_type == "multi_attempt" and gsm[0].cluster_id is None
    with raises_naming("gsm8k-test.json item 0", "python -m router_lab.clusters"):
        load_routerdc_json(split2 / "gsm8k-test.json", require_cluster_id=True)
    names = check_same_llms(
        {
            "mmlu_train": list(mmlu[0].scores),
            "gsm8k-test": list(gsm[0].scores),
            "MATH_prealgebra": list(load_routerdc_json(split2 / "MATH_prealgebra.json")[0].scores),
        }
    )
    assert len(names) == 7
    assert len(load_routerdc_json(split2 / "mmlu_test.json", llm_names=sorted(names))) > 0
    humaneval = load_routerdc_json(cluster / "humaneval_train.json", n_items=1000)
    assert len(humaneval) == 1000 and len({r.id for r in humaneval}) == 1000
    assert humaneval[115].query == humaneval[0].query


@needs_shared("clinc150")
def test_shared_clinc150():
    path = SHARED_DATA / "clinc150" / "clinc150_train_val.json"
    domains = load_clinc150(path)
    intents = load_clinc150(path, label="intent")
    assert len(domains) == len(intents) == 15000
    assert len({r.label for r in intents}) == 150
    assert len({r.label for r in domains}) == 10 == len({r.task for r in intents})
    assert len({r.id for r in domains}) == 15000
