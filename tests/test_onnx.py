"""runtime=onnx: the router's encoder in ONNX Runtime gives the torch router's decisions for
every family (built at load time, or stored by export onnx=true), int8 stays close, and the
CLI and errors say what is wrong in one line."""
from __future__ import annotations

import json

import pytest
import torch

from router_lab.api import Router
from router_lab.errors import UserError
from router_lab.export import main as export_main
from router_lab.route import main as route_main
from test_api import FAMILIES, family_available, train_tiny_run
from test_export import cli

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

QUERIES = ["What is 2+2?", "Write a python function that reverses a list", "Translate 'good morning' to French",
           "Summarise the causes of the French revolution in three sentences, please"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_runs")
    return {f: train_tiny_run(root, f) for f in FAMILIES if family_available(f)}


def utilities(decisions) -> torch.Tensor:
    return torch.tensor([[d.scores[k] for k in sorted(d.scores)] for d in decisions])


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnx_float_gives_the_torch_decisions(runs, family):
    if family not in runs:
        pytest.skip(f"{family} not available")
    ref = Router.load(runs[family]).route_batch(QUERIES)
    onnx = Router.load(runs[family], runtime="onnx")
    assert onnx.describe()["runtime"] == "onnx"
    got = onnx.route_batch(QUERIES)
    assert [d.llm for d in got] == [d.llm for d in ref]
    assert torch.allclose(utilities(got), utilities(ref), atol=1e-4)
    assert [d.confidence for d in got] == pytest.approx([d.confidence for d in ref], abs=1e-4)


def test_export_stores_the_onnx_files_and_int8_stays_close(runs, tmp_path, capsys):
    out = tmp_path / "exported"
    code, _, err = cli(capsys, export_main, f"ckpt_path={runs['classifier_frozen']}", f"out={out}", "onnx=true")
    assert code == 0, err
    assert (out / "onnx" / "encoder.onnx").is_file() and (out / "onnx" / "encoder.int8.onnx").is_file()
    float_router = Router.load(out, runtime="onnx")
    int8 = Router.load(out, runtime="onnx", quantize="int8")
    assert int8.embed.path == out / "onnx" / "encoder.int8.onnx"  # the stored file, not a rebuild
    ref = utilities(Router.load(out).route_batch(QUERIES))
    assert torch.allclose(utilities(float_router.route_batch(QUERIES)), ref, atol=1e-4)
    assert (utilities(int8.route_batch(QUERIES)) - ref).abs().max() < 0.05


def test_route_cli_with_onnx_runtime(runs, capsys):
    code, out, err = cli(capsys, route_main, f"router={runs['classifier_frozen']}", "runtime=onnx",
                         "query=What is 2+2?")
    assert code == 0, err
    ref = Router.load(runs["classifier_frozen"]).route("What is 2+2?")
    d = json.loads(out)
    assert d["llm"] == ref.llm and d["confidence"] == pytest.approx(ref.confidence, abs=1e-4)
    code, _, err = cli(capsys, route_main, f"router={runs['classifier_frozen']}", "runtime=onnxx", "query=hi")
    assert code == 2 and err.strip().count("\n") == 0 and "runtime='onnxx'" in err


@pytest.mark.parametrize("kwargs, needle", [
    ({"runtime": "tensorrt"}, "runtime='tensorrt'; expected one of ['torch', 'onnx']"),
    ({"runtime": "onnx", "quantize": "int4"}, "quantize='int4'; expected one of ['int8']"),
])
def test_bad_runtime_options_are_one_line(runs, kwargs, needle):
    with pytest.raises(UserError) as e:
        Router.load(runs["classifier_frozen"], **kwargs)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_corrupt_onnx_file_is_named(runs, tmp_path, capsys):
    out = tmp_path / "exported"
    assert cli(capsys, export_main, f"ckpt_path={runs['classifier_frozen']}", f"out={out}", "onnx=true")[0] == 0
    (out / "onnx" / "encoder.onnx").write_bytes(b"not onnx")
    with pytest.raises(UserError) as e:
        Router.load(out, runtime="onnx")
    assert "encoder.onnx: not a loadable ONNX encoder" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("arch, pooling", [("distilbert", "cls"), ("deberta_v2", "cls"), ("qwen2", "last_token"),
                                           ("qwen2", "mean")])
def test_every_encoder_architecture_exports_with_its_pooling(tmp_path, arch, pooling):
    from conftest import make_tiny_encoder
    from router_lab.encoders import EncoderSpec, QueryEncoder, load_tokenizer
    from router_lab.onnx_runtime import OnnxEncoder, export_encoder

    d = make_tiny_encoder(arch, tmp_path / arch)
    spec = EncoderSpec.from_config({"name": arch, "pretrained": str(d), "pooling": pooling, "max_length": 32})
    enc, tok = QueryEncoder(spec).eval(), load_tokenizer(spec)
    onnx = OnnxEncoder(export_encoder(enc, tmp_path / "onnx"))
    # other batch size and lengths than the export's trace (2 x 8), with padding
    b = tok(["hello there", "a much longer question about routing and many other things", "hi"],
            return_tensors="pt", padding=True)
    with torch.inference_mode():
        ref = enc(b["input_ids"], b["attention_mask"])
    assert torch.allclose(onnx(b["input_ids"], b["attention_mask"]), ref, atol=1e-5)
