"""cluster_id generation: the pure steps on hand-built points, the CLI function on a tiny
split2-format fixture (inputs untouched, outputs carry cluster_id), and the notebook headless.

    python -m pytest tests/test_clusters.py -q
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA, compose
from router_lab import clusters as C
from router_lab.data.loaders.routerdc import load_routerdc_json
from router_lab.errors import UserError
from test_routerdc import TRAIN, write_split2


def test_kmeans_separates_two_obvious_blobs_and_pca_keeps_them_apart():
    x = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [10, 10, 10], [10.1, 10, 10], [10, 10.1, 10]], dtype=float)
    ids = C.kmeans_cluster_ids(x, 2, seed=0)
    assert len(set(ids[:3])) == 1 and len(set(ids[3:])) == 1 and ids[0] != ids[3]
    z = C.reduce_dimension(x, "pca", 1)
    assert z.shape == (6, 1) and abs(z[:3].mean() - z[3:].mean()) > 10
    assert C.reduce_dimension(x, "none") is x
    assert C.reduce_dimension(x, "tsne", 2).shape == (6, 2)


def test_bad_settings_are_user_errors():
    x = np.zeros((4, 3))
    with pytest.raises(UserError, match="n_clusters=5"):
        C.kmeans_cluster_ids(x, 5)
    with pytest.raises(UserError, match="reduce='umap'"):
        C.reduce_dimension(x, "umap")
    with pytest.raises(UserError, match="at most 3"):
        C.reduce_dimension(np.zeros((10, 8)), "tsne", 5)


def test_task_cluster_counts_table():
    table = C.task_cluster_counts(["a", "a", "b"], np.array([0, 1, 1]))
    assert table.splitlines() == ["task  0  1", "a     1  1", "b     0  1"]


def test_generate_writes_new_files_with_cluster_ids_and_leaves_inputs_alone(tmp_path, tiny_bert, capsys):
    root = write_split2(tmp_path / "data", n=6, cluster=False)
    before = {f: f.read_bytes() for f in (root / "routerdc" / "split2_model7_cluster").glob("*.json")}
    cfg = compose([f"paths.data_dir={root}", f"paths.cache_dir={tmp_path / 'cache'}", f"encoder.pretrained={tiny_bert}",
                   "encoder.max_length=32", "n_clusters=3", "reduce=pca", "reduce_dim=4", f"output_dir={tmp_path / 'out'}"],
                  config_name="clusters", output_dir=tmp_path / "run")
    result = C.generate(cfg)
    assert {f: f.read_bytes() for f in before} == before
    assert [f.name for f in result["files"]] == [f"{t}.json" for t in TRAIN]
    ids = []
    for f in result["files"]:
        assert f.parent == tmp_path / "out" / "split2_model7_cluster"
        recs = load_routerdc_json(f, require_cluster_id=True)  # every item has one
        assert len(recs) == 6 and set(json.loads(f.read_text())[0]) == {"question", "scores", "cluster_id"}
        ids += [r.cluster_id for r in recs]
    assert sorted(set(ids)) == [0, 1, 2] and ids == result["cluster_ids"].tolist()
    assert "data.train.0.path=" in capsys.readouterr().out


def test_output_never_overwrites_the_input(tmp_path):
    src = tmp_path / "split2_model7_cluster" / "mmlu_train.json"
    with pytest.raises(UserError, match="is the input file"):
        C.output_path({"loader": "routerdc", "path": str(src)}, tmp_path)


@pytest.mark.parametrize("data", ["synthetic", "split2"])
def test_notebook_runs_top_to_bottom_headless(data, tmp_path, monkeypatch):
    """The notebook runs on split2 when the data is there, and on the built-in synthetic
    benchmark on a machine without it; the plot goes to a known place."""
    if data == "split2" and not (SHARED_DATA / "routerdc" / "split2_model7_cluster").is_dir():
        pytest.skip(f"RouterDC split2 not found at {SHARED_DATA / 'routerdc'}")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / "notebooks" / "cluster_ids.ipynb", as_version=4)
    monkeypatch.setenv("CLUSTER_NB_SAMPLE", "10" if data == "split2" else "60")
    monkeypatch.setenv("CLUSTER_NB_DATA", data)
    monkeypatch.setenv("ROUTER_LAB_NOTEBOOK_OUT", str(tmp_path))  # not the repo's outputs/
    monkeypatch.setenv("ROUTER_LAB_DATA_DIR", str(SHARED_DATA))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"data={data}" in text and "clusters.png" in text
    assert ("mmlu_train.json" if data == "split2" else "synthetic/train.jsonl") in text
    from PIL import Image

    with Image.open(tmp_path / "cluster_ids" / "clusters.png") as im:
        assert im.info["dpi"][0] >= 149  # readable, not a thumbnail
