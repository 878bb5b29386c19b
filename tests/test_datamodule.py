"""RouterDataModule: splits, named test sets, groups, labels, bad input."""
from __future__ import annotations

import json

import pytest

from router_lab.data.datamodule import RouterDataModule
from router_lab.data.records import DataError

LLMS = ["small", "big"]


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def rows(n, tasks=("math", "chat")):
    out = []
    for i in range(n):
        t = tasks[i % len(tasks)]
        # math: big wins; chat: small is as good (tie) or better
        s = {"small": 0.0, "big": 1.0} if t == "math" else {"small": 1.0, "big": 1.0 if i % 3 else 0.0}
        out.append({"id": f"r{i}", "query": f"{t} question number {i}", "task": t, "scores": s})
    return out


def dm_for(tmp_path, tiny_bert, **kw):
    path = write_jsonl(tmp_path / "train.jsonl", rows(60))
    args = dict(train={"loader": "table", "path": str(path)}, encoder={"name": "tiny", "pretrained": str(tiny_bert),
                                                                        "max_length": 16},
                split={"val_fraction": 0.2, "test_fraction": 0.25, "seed": 0}, cache_dir=str(tmp_path / "cache"))
    args.update(kw)
    dm = RouterDataModule(**args)
    dm.setup()
    return dm


def test_seeded_split_is_stratified_by_task_and_disjoint(tmp_path, tiny_bert):
    dm = dm_for(tmp_path, tiny_bert)
    ids = [set(r.id for r in s.records) for s in [dm.train_set, dm.val_set, *dm.test_sets.values()]]
    assert sum(len(i) for i in ids) == 60 and len(set().union(*ids)) == 60
    # test_fraction 0.25 of each task (30 each) -> 8 per task, split per task into two test sets
    assert sorted(dm.test_sets) == ["chat", "math"] and all(len(s) == 8 for s in dm.test_sets.values())
    assert dm.groups == {"in_distribution": ["chat", "math"]}
    again = dm_for(tmp_path, tiny_bert)
    assert [r.id for r in again.val_set.records] == [r.id for r in dm.val_set.records]


def test_carved_validation_and_test_never_share_a_text_with_train(tmp_path, tiny_bert):
    """Files repeated to a fixed size (split2 repeats ARC-C's 820 items to 1000) carve by
    query text: every copy of a text lands on one side, so no held-out query is trained on."""
    data = rows(40)
    data += [dict(r, id=f"{r['id']}-copy{c}") for c in range(2) for r in data[:25]]  # 50 repeats of 25 texts
    path = write_jsonl(tmp_path / "rep.jsonl", data)
    dm = RouterDataModule(train={"loader": "table", "path": str(path)},
                          encoder={"name": "tiny", "pretrained": str(tiny_bert), "max_length": 16},
                          split={"val_fraction": 0.3, "test_fraction": 0.2, "seed": 3}, cache_dir=str(tmp_path / "c"))
    dm.setup("validate")
    train = {r.text for r in dm.train_set.records}
    val = {r.text for r in dm.val_set.records}
    test = {r.text for s in dm.test_sets.values() for r in s.records}
    assert val and test and not val & train and not test & train and not val & test
    assert len(dm.train_set) + len(dm.val_set) + sum(map(len, dm.test_sets.values())) == 90
    # Each task still gives up about its share (records, not texts).
    for t in ("math", "chat"):
        n_t = sum(r["task"] == t for r in data)
        n_test = sum(r.task == t for s in dm.test_sets.values() for r in s.records)
        assert round(n_t * 0.2) <= n_test <= round(n_t * 0.2) + 2


def test_best_llm_labels_break_ties_towards_the_better_llm_overall(tmp_path, tiny_bert):
    dm = dm_for(tmp_path, tiny_bert)
    assert dm.categories == LLMS and dm.label_kind == "best_llm"
    # big is better on average (math always, chat 2/3), so chat ties (both 1.0) go to big.
    s = dm.train_set
    for r, lab in zip(s.records, s.labels):
        if r.task == "math" or r.scores["big"] == 1.0:
            assert dm.categories[lab] == "big"
        else:
            assert dm.categories[lab] == "small"


def test_frozen_batches_carry_embeddings_and_scores(tmp_path, tiny_bert):
    dm = dm_for(tmp_path, tiny_bert)
    batch = next(iter(dm.train_dataloader()))
    assert batch["embedding"].shape[1] == 32 and batch["scores"].shape[1] == 2
    assert dm.info()["embedding_dim"] == 32 and dm.info()["llm_names"] == LLMS


def test_frozen_encoding_is_lazy_per_stage(tmp_path, tiny_bert):
    """setup("fit") encodes train and val only; the test sets are encoded when first tested
    (a run with test=false never encodes them), all of them in one pass."""
    path = write_jsonl(tmp_path / "train.jsonl", rows(60))
    dm = RouterDataModule(train={"loader": "table", "path": str(path)},
                          encoder={"name": "tiny", "pretrained": str(tiny_bert), "max_length": 16},
                          split={"val_fraction": 0.2, "test_fraction": 0.25, "seed": 0},
                          cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    assert dm.train_set.embeddings is not None and dm.val_set.embeddings is not None
    assert all(s.embeddings is None for s in dm.test_sets.values())
    fit_misses = dm.encode_stats["misses"]
    assert fit_misses == len({r.text for r in dm.train_set.records + dm.val_set.records})
    loaders = dm.test_dataloader()
    assert all(s.embeddings is not None for s in dm.test_sets.values()) and len(loaders) == 2
    assert dm.encode_stats["misses"] == fit_misses + sum(len(s) for s in dm.test_sets.values())
    assert next(iter(loaders[0]))["embedding"].shape[1] == 32


def test_finetune_batches_are_padded_to_the_longest_item(tmp_path, tiny_bert):
    dm = dm_for(tmp_path, tiny_bert, encoder={"name": "tiny", "pretrained": str(tiny_bert), "max_length": 64,
                                              "frozen": False})
    batch = next(iter(dm.val_dataloader()))
    assert "embedding" not in batch
    longest = int(batch["attention_mask"].sum(1).max())
    assert batch["input_ids"].shape[1] == longest < 64


def test_explicit_test_groups_must_name_existing_sets(tmp_path, tiny_bert):
    with pytest.raises(DataError, match="unknown test set"):
        dm_for(tmp_path, tiny_bert, test_groups={"ood": ["nope"]})


@pytest.mark.parametrize("bad,match", [
    ({"small": 0.5}, "no score for LLM"),
    ({"small": 0.5, "big": float("nan")}, "expected a number >= 0"),
    ({"small": -1, "big": 0.5}, "expected a number >= 0"),
    ({"small": 0.5, "big": 0.5, "huge": 1.0}, "unknown LLM"),
])
def test_bad_scores_fail_with_one_line_naming_the_record(tmp_path, tiny_bert, bad, match):
    data = rows(20)
    data[5]["scores"] = bad
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r, allow_nan=True) for r in data))
    dm = RouterDataModule(train={"loader": "table", "path": str(path)}, llm_pool={"llms": LLMS},
                          encoder={"name": "tiny", "pretrained": str(tiny_bert)})
    with pytest.raises(DataError, match=match) as e:
        dm.setup()
    assert "\n" not in str(e.value)


def test_missing_file_and_unknown_loader_are_one_line_errors(tmp_path, tiny_bert):
    enc = {"name": "tiny", "pretrained": str(tiny_bert)}
    with pytest.raises(DataError, match="does not exist"):
        RouterDataModule(train={"loader": "table", "path": str(tmp_path / "nope.jsonl")}, encoder=enc).setup()
    with pytest.raises(DataError, match="loader 'tabel' is unknown"):
        RouterDataModule(train={"loader": "tabel", "path": "x"}, encoder=enc).setup()
    with pytest.raises(DataError, match="does not take these arguments"):
        RouterDataModule(train={"loader": "table", "path": "x", "colums": {}}, encoder=enc).setup()


def test_empty_split_after_filtering_is_an_error(tmp_path, tiny_bert):
    path = write_jsonl(tmp_path / "t.jsonl", rows(3, tasks=("math",)))
    dm = RouterDataModule(train={"loader": "table", "path": str(path)}, encoder={"name": "t", "pretrained": str(tiny_bert)},
                          split={"val_fraction": 0.0, "test_fraction": 0.0})
    with pytest.raises(DataError, match="empty"):
        dm.setup()


def test_arrow_cache_is_reused_and_invalidated_by_edits(tmp_path, tiny_bert):
    from router_lab.data.sources import load_source

    path = write_jsonl(tmp_path / "t.jsonl", rows(10))
    ds1 = load_source({"loader": "table", "path": str(path)}, tmp_path / "c")
    ds2 = load_source({"loader": "table", "path": str(path)}, tmp_path / "c")
    assert ds1.cache_files and ds1.cache_files[0]["filename"] == ds2.cache_files[0]["filename"]
    import os, time
    write_jsonl(path, rows(12))
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert len(load_source({"loader": "table", "path": str(path)}, tmp_path / "c")) == 12


def test_arrow_cache_is_invalidated_by_a_changed_loader(tmp_path, monkeypatch):
    """A new release's loader (stricter checks, another parse) re-reads a cached file: the cache
    key covers the code that reads it, not only the spec and the file."""
    import importlib
    import sys

    from router_lab.data import sources
    from router_lab.data.loaders import LOADERS

    src = tmp_path / "mods" / "my_loader_mod.py"
    src.parent.mkdir()
    body = ("from router_lab.data.loaders.table import load_table\n"
            "def load(path):\n    return [r for r in load_table(path)][:{n}]\n")
    src.write_text(body.format(n=3))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # same size, same second: no stale .pyc
    monkeypatch.syspath_prepend(str(src.parent))
    mod = importlib.import_module("my_loader_mod")
    monkeypatch.setitem(LOADERS, "mine", mod.load)
    path = write_jsonl(tmp_path / "t.jsonl", rows(10))
    spec = {"loader": "mine", "path": str(path)}
    sources._code_stamp.cache_clear()
    assert len(sources.load_source(spec, tmp_path / "c")) == 3
    assert len(sources.load_source(spec, tmp_path / "c")) == 3  # cached
    src.write_text(body.format(n=5))  # the next release of the loader
    monkeypatch.delitem(sys.modules, "my_loader_mod")
    mod = importlib.import_module("my_loader_mod")
    monkeypatch.setitem(LOADERS, "mine", mod.load)
    sources._code_stamp.cache_clear()  # a new process
    assert len(sources.load_source(spec, tmp_path / "c")) == 5


def test_score_files_naming_different_llms_are_named_in_the_error(tmp_path, tiny_bert):
    a = write_jsonl(tmp_path / "a.jsonl", rows(10))
    other = rows(10)
    for r in other:
        r["scores"] = {"small": 1.0, "huge": 0.0}
    b = write_jsonl(tmp_path / "b.jsonl", other)
    dm = RouterDataModule(train=[{"loader": "table", "path": str(a)}, {"loader": "table", "path": str(b)}],
                          encoder={"name": "t", "pretrained": str(tiny_bert)})
    with pytest.raises(DataError, match=r"b.jsonl and .*a.jsonl name different LLMs"):
        dm.setup()


# ---- several files: a path list or a glob; RouterBench folders with or without test files ----


def _rb_csv(path, task, n=20, start=0):
    import pandas as pd

    rows = []
    for i in range(start, start + n):
        rows.append({"sample_id": f"{task}.{i}", "prompt": f"['shot\\n\\n{task} question {i}']", "eval_name": task,
                     "small": float(i % 2), "big": 1.0, "small|total_cost": 0.001, "big|total_cost": 0.01})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_routerbench_dir_with_and_without_test_files(tmp_path, tiny_bert):
    from tests.conftest import compose

    d = tmp_path / "rb"
    d.mkdir()
    _rb_csv(d / "arc_train.csv", "arc")
    _rb_csv(d / "wino_train.csv", "wino")
    cfg = compose(["data=routerbench", f"data.dir={d}", f"paths.cache_dir={tmp_path / 'cache'}",
                   f"encoder.pretrained={tiny_bert}", "encoder.max_length=16"])
    # The data config chooses left truncation (few-shot prompts end with the question).
    assert cfg.encoder.truncation_side == "left"
    import hydra

    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup()
    # No *_test.csv: a test split is carved out of train per task, disjoint from train and val.
    assert dm.test_carved
    assert sorted(dm.test_sets) == ["arc", "wino"] and all(len(s) == 4 for s in dm.test_sets.values())
    test_ids = {r.id for s in dm.test_sets.values() for r in s.records}
    assert not test_ids & {r.id for r in dm.train_set.records + dm.val_set.records}
    assert len(dm.train_set) + len(dm.val_set) + len(test_ids) == 40
    assert dm.train_set.records[0].query.endswith("question " + dm.train_set.records[0].id.split(".")[1])

    # With *_test.csv files they are the test sets, and train keeps every training row.
    _rb_csv(d / "arc_test.csv", "arc", n=6, start=100)
    _rb_csv(d / "wino_test.csv", "wino", n=6, start=100)
    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup()
    assert {k: len(v) for k, v in dm.test_sets.items()} == {"arc": 6, "wino": 6} and not dm.test_carved
    assert len(dm.train_set) + len(dm.val_set) == 40


def test_routerbench_defaults_read_the_published_quirks(tmp_path, tiny_bert, caplog):
    """As in the published ARC file: a row with a missing score whose sample_id another,
    different question reuses. The RouterBench defaults drop the row (counted) and keep every
    reused id as <id>#k; ``on_missing_score=mask`` keeps the row and trains on the scores there are."""
    import logging

    import hydra
    import numpy as np
    import pandas as pd

    from tests.conftest import compose

    d = tmp_path / "rb"
    d.mkdir()
    df = pd.read_csv(_rb_csv(d / "arc_train.csv", "arc", n=30))
    df.loc[3, "small"] = float("nan")
    df.loc[4, "sample_id"] = df.loc[5, "sample_id"] = df.loc[6, "sample_id"] = "arc.reused"
    df.to_csv(d / "arc_train.csv", index=False)
    _rb_csv(d / "arc_test.csv", "arc", n=6, start=100)
    base = ["data=routerbench", f"data.dir={d}", f"paths.cache_dir={tmp_path / 'cache'}",
            f"encoder.pretrained={tiny_bert}", "encoder.max_length=16"]
    with caplog.at_level(logging.WARNING, logger="router_lab.data.loaders"):
        dm = hydra.utils.instantiate(compose(base).data, _convert_="all")
        dm.setup()
    ids = [r.id for r in dm.train_set.records + dm.val_set.records]
    assert len(ids) == 29 and "arc.3" not in ids
    assert {"arc.reused", "arc.reused#1", "arc.reused#2"} <= set(ids)
    assert "dropped 1 of 30" in caplog.text and "1 id(s) repeat" in caplog.text
    dm = hydra.utils.instantiate(compose([*base, "data.source.on_missing_score=mask"]).data, _convert_="all")
    dm.setup()
    split = dm.train_set if any(r.id == "arc.3" for r in dm.train_set.records) else dm.val_set
    row = [r.id for r in split.records].index("arc.3")
    assert len(dm.train_set) + len(dm.val_set) == 30
    assert np.isnan(split.scores[row, dm.pool.names.index("small")]) and split.scores[row, dm.pool.names.index("big")] == 1


def test_several_training_files_are_one_override(tmp_path, tiny_bert):
    from tests.conftest import compose

    a = _rb_csv(tmp_path / "a_train.csv", "a")
    b = _rb_csv(tmp_path / "b_train.csv", "b")
    ta = _rb_csv(tmp_path / "a_test.csv", "a", n=5, start=50)
    cfg = compose(["data=routerbench", f"data.train=[{a},{b}]", f"data.test=[{ta}]",
                   f"paths.cache_dir={tmp_path / 'cache'}", f"encoder.pretrained={tiny_bert}"])
    import hydra

    dm = hydra.utils.instantiate(cfg.data, _convert_="all")
    dm.setup()
    assert sorted({r.task for r in dm.train_set.records + dm.val_set.records}) == ["a", "b"]
    assert {k: len(v) for k, v in dm.test_sets.items()} == {"test": 5}  # one task: the set keeps its name
    # A glob that matches nothing is an error naming it (unless the source is optional).
    dm = RouterDataModule(train={"loader": "routerbench", "path": str(tmp_path / "*_nope.csv")},
                          encoder={"pretrained": str(tiny_bert)}, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"no file matches .*\*_nope.csv"):
        dm.setup()


def test_train_on_several_files_is_data_train_list(tmp_path, tiny_bert, cfg_factory):
    """``data.train=[f1,f2]`` (issue 16): each file read with data.source; the run trains and
    tests on both files' tasks. A bad entry is one line naming it."""
    from router_lab.train import train

    f1 = write_jsonl(tmp_path / "f1.jsonl", rows(40, tasks=("math",)))
    f2 = write_jsonl(tmp_path / "f2.jsonl", [dict(r, id=f"b{i}") for i, r in enumerate(rows(40, tasks=("chat",)))])
    t = write_jsonl(tmp_path / "t.jsonl", [dict(r, id=f"t{i}") for i, r in enumerate(rows(10))])
    cfg = cfg_factory(["data=files", f"data.train=[{f1},{f2}]", f"data.test=[{t}]", "model=knn", "model.k=3",
                       f"encoder.pretrained={tiny_bert}", "encoder.max_length=16", "callbacks=none"])
    metrics, objects = train(cfg)
    dm = objects["datamodule"]
    assert sorted({r.task for r in dm.train_set.records}) == ["chat", "math"] and len(dm.train_set) == 72
    assert {k: len(v) for k, v in dm.test_sets.items()} == {"chat": 5, "math": 5}
    assert "math/router/acc_predict" in metrics and "chat/router/acc_predict" in metrics

    from router_lab.data.sources import source_specs

    table = {"loader": "table", "score_type": "probability"}
    assert source_specs(["a.jsonl", {"path": "b.csv", "score_type": "multi_attempt"}, {"loader": "records", "path": "c"}],
                        table, "data.train") == [{**table, "path": "a.jsonl"}, {**table, "path": "b.csv",
                                                 "score_type": "multi_attempt"}, {"loader": "records", "path": "c"}]
    with pytest.raises(DataError, match=r"data.train\[1\]: 3 is neither a file path nor a source spec"):
        source_specs(["a.jsonl", 3], table, "data.train")
    with pytest.raises(DataError, match="names no loader"):
        source_specs("a.jsonl", None, "data.train")
