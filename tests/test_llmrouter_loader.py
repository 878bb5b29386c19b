"""LLMRouter's routing JSONL (one row per query x LLM) as routing records, and through train.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_lab.data.loaders.llmrouter import load_llmrouter
from router_lab.data.records import DataError


def write_rows(path: Path, n: int = 40, llms=("small", "large")) -> Path:
    rows = []
    for i in range(n):
        task = "math" if i % 2 else "chat"
        for j, m in enumerate(llms):
            good = (task == "math") == (m == "large")
            rows.append({"task_name": task, "query": f"{task} question number {i}", "model_name": m,
                         "performance": 1.0 if good else 0.0, "cost": 0.1 * (j + 1), "embedding_id": i})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rows_of_one_query_become_one_record(tmp_path):
    recs = load_llmrouter(path=write_rows(tmp_path / "r.jsonl", n=4))
    assert len(recs) == 4 and recs[1].task == "math" and recs[1].query == "math question number 1"
    assert recs[1].scores == {"small": 0.0, "large": 1.0} and recs[1].costs == {"small": 0.1, "large": 0.2}
    assert recs[0].score_type == "multi_attempt"


@pytest.mark.parametrize("case", ["missing_column", "duplicate", "nan"])
def test_bad_rows_are_one_data_error(tmp_path, case):
    p = write_rows(tmp_path / "r.jsonl", n=2)
    rows = [json.loads(line) for line in p.read_text().splitlines()]
    if case == "missing_column":
        rows = [{k: v for k, v in r.items() if k != "performance"} for r in rows]
    elif case == "duplicate":
        rows.append(dict(rows[0]))
    else:
        rows[0]["performance"] = float("nan")
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as e:
        load_llmrouter(path=p)
    assert "\n" not in str(e.value)
    assert {"missing_column": "performance", "duplicate": "second row", "nan": "r.jsonl"}[case] in str(e.value)


def test_train_on_llmrouter_data(tmp_path, cfg_factory):
    from router_lab.train import train

    p = write_rows(tmp_path / "r.jsonl", n=200)
    cfg = cfg_factory(["model=knn", "model.k=5", "data=files",
                       f"data.train={{loader: llmrouter, path: {p}}}"])  # names another loader than data.source
    metrics, _ = train(cfg)
    for task in ("math", "chat"):  # test sets are carved per task; the right LLM is easy to find
        assert metrics[f"{task}/router/acc_predict"] == 1.0 > metrics[f"{task}/random/acc_predict"]
