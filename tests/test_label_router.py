"""Category ("label") routers -- a classifier trained on label-only data, as on CLINC150 --
through the real entry points: train, Router, route (single, batch, evaluate), calibrate
(out-of-scope threshold for a target recall), export and the proxy. Tiny label data the test
writes and a tiny random encoder; the CLINC150 test at the end needs ../shared/data."""
from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import openai
import pytest
import torch
import yaml

from conftest import SHARED_DATA, call_cli, compose, make_tiny_encoder, route_metrics
from router_lab.api import Policy, Router
from router_lab.policy import label_decision
from router_lab.calibrate import main as calibrate_main
from router_lab.errors import UserError
from router_lab.export import main as export_main
from router_lab.route import main as route_main
from router_lab.serve import create_app, loopback_upstream, run_in_thread

TOPICS = {
    "weather": ["will it rain in {c} tomorrow", "what is the forecast for {c}", "how hot is it in {c} today",
                "is it snowing in {c}"],
    "banking": ["what is my account balance", "transfer {n} dollars to savings", "freeze my credit card",
                "when is my card payment due, it is {n} dollars"],
    "music": ["play some jazz by {c} artists", "skip this song", "add this track to my {c} playlist",
              "turn the volume up to {n}"],
}
CITIES = ["paris", "tokyo", "lima", "oslo", "cairo", "austin", "perth", "quito", "seoul", "dakar"]
OOS = ["how many legs does a spider have", "who wrote war and peace", "what is the capital of peru",
       "tell me a fun fact about sharks", "how do i boil an egg", "what does dna stand for",
       "recommend a good novel", "how far away is the moon", "why is the sky blue", "what is a prime number"]


def label_rows() -> list[dict]:
    rows = []
    for label, templates in TOPICS.items():
        for i, c in enumerate(CITIES * 2):
            t = templates[i % len(templates)]
            rows.append({"query": t.format(c=c, n=10 * i + 5), "task": label, "label": label})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def label_run(tmp_path_factory) -> dict:
    """A classifier trained on label-only data (empty LLM pool), its metrics, and a held-out
    file of in-scope and out-of-scope ("oos") queries."""
    from omegaconf import OmegaConf

    from router_lab.train import train

    root = tmp_path_factory.mktemp("label_run")
    enc = make_tiny_encoder("bert", root / "tiny_bert")
    train_file = write_jsonl(root / "train.jsonl", label_rows())
    run = root / "run"
    cfg = compose([f"paths.cache_dir={root / 'cache'}", "logger=none", "trainer.accelerator=cpu",
                   "extras.print_config=false", "data=files", f"data.train={train_file}",
                   "trainer.max_epochs=3", f"encoder.pretrained={enc}", "encoder.name=tiny_bert",
                   "encoder.max_length=32", "model.head_lr=0.01"], output_dir=run)
    metrics, _ = train(cfg)
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    held = [{"query": r["query"].replace("paris", "rome"), "label": r["label"]} for r in label_rows()[::4]]
    held += [{"query": q, "label": "oos"} for q in OOS]
    return {"run": run, "metrics": metrics, "heldout": write_jsonl(root / "heldout.jsonl", held), "n_oos": len(OOS)}


cli = call_cli


# ------------------------------------------------------------------ the decision rule, by hand

def test_label_decision_on_hand_built_probabilities():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    # categories 0, 1 -> LLM 1, category 2 -> no LLM; out of scope -> LLM 0
    d = label_decision(probs, torch.tensor([1, 1, -1]), threshold=0.5, fallback_index=0, n_llms=2)
    assert d["category"].tolist() == [0, 0, 2]
    torch.testing.assert_close(d["confidence"], torch.tensor([0.7, 0.4, 0.8]))
    assert d["fallback"].tolist() == [False, True, False]
    assert d["llm"].tolist() == [1, 0, -1]
    torch.testing.assert_close(d["utilities"], torch.tensor([[0.0, 0.9], [0.0, 0.75], [0.0, 0.2]]))
    # no threshold: never out of scope
    assert not label_decision(probs, torch.tensor([1, 1, -1]), None, 0, 2)["fallback"].any()


def test_training_on_labels_reports_real_fallback_rates_and_accuracy(label_run):
    m = label_run["metrics"]
    rates = {k: v for k, v in m.items() if k.endswith("/router/fallback_rate")}
    assert rates and all(v == 0.0 for v in rates.values())  # no threshold: nothing is out of scope
    assert any(k.endswith("/router/accuracy") for k in m)


# ------------------------------------------------------------------ Router API

def test_label_router_routes_to_a_category_without_any_llm(label_run):
    router = Router.load(label_run["run"])
    assert router.label_router and router.llm_names == [] and sorted(router.categories) == sorted(TOPICS)
    ds = router.route_batch(["will it rain in rome tomorrow", "skip this song", "hello"])
    for d in ds:
        assert d.llm is None and d.category in TOPICS and 0 < d.confidence <= 1
        assert d.fallback is False and d.scores == {} and d.cost is None
    assert router.route("skip this song").to_dict()["category"] == ds[1].category


def test_category_map_default_llm_and_out_of_scope_threshold(label_run):
    run = label_run["run"]
    base = Router.load(run)
    queries = ["will it rain in rome tomorrow", "freeze my credit card", "turn the volume up to 3"]
    cats = [d.category for d in base.route_batch(queries)]
    policy = {"category_map": {"weather": "weather-bot", "banking": "bank-llm"}, "default_llm": "generalist"}
    router = Router.load(run, route_map={"policy": policy})
    assert router.llm_names == ["weather-bot", "bank-llm", "generalist"]
    want = {"weather": "weather-bot", "banking": "bank-llm", "music": "generalist"}
    ds = router.route_batch(queries)
    assert [d.llm for d in ds] == [want[c] for c in cats] and [d.category for d in ds] == cats
    for d in ds:  # scores: the probability mass of the categories each LLM serves
        assert sum(d.scores.values()) == pytest.approx(1.0, abs=1e-5) and d.scores[d.llm] >= d.confidence - 1e-6

    # Everything out of scope: flagged, sent to the fallback (default_llm when no fallback_llm)
    strict = Router.load(run, route_map={"policy": {**policy, "confidence_threshold": 1.01}})
    assert all(d.fallback and d.llm == "generalist" and d.category in TOPICS for d in strict.route_batch(queries))
    # A fallback to an out-of-scope label with an empty pool (issue 18: "unknown LLM 'oos'")
    oos = Router.load(run, route_map={"policy": {"confidence_threshold": 1.01, "fallback_llm": "oos"}})
    assert {(d.llm, d.fallback) for d in oos.route_batch(queries)} == {("oos", True)}
    # Threshold alone: out of scope with no LLM
    bare = Router.load(run, route_map={"policy": {"confidence_threshold": 1.01}})
    assert {(d.llm, d.fallback) for d in bare.route_batch(queries)} == {(None, True)}
    # The earlier spelling of category_map still reads
    old = Router.load(run, route_map={"policy": {"categories": {"weather": "w"}}})
    assert old.policy.category_map == {"weather": "w"}


@pytest.mark.parametrize("policy,needle", [
    ({"category_map": {"poetry": "x"}}, "unknown category 'poetry'"),
    ({"category_map": ["weather"]}, "expected {category: llm}"),
    ({"cost_lambda": 1.0, "default_llm": "g"}, "routes by category_map"),
    ({"default_lm": "g"}, "unknown policy key"),
])
def test_bad_label_policy_is_one_clear_error(label_run, policy, needle):
    with pytest.raises(UserError, match=needle) as e:
        Router.load(label_run["run"], route_map={"policy": policy})
    assert "\n" not in str(e.value)


def test_apply_policy_on_hand_built_label_probabilities(label_run):
    router = Router.load(label_run["run"], route_map={"policy": {"category_map": {"music": "dj"},
                                                                 "default_llm": "gen"}})
    c = router.categories
    probs = torch.zeros(3, len(c))
    probs[0, c.index("music")] = 0.9
    probs[0, c.index("weather")] = 0.1
    probs[1, c.index("weather")] = 0.6
    probs[1, c.index("banking")] = 0.4
    probs[2, c.index("banking")] = 0.5
    probs[2, c.index("music")] = 0.5
    out = router.apply_policy({"probs": probs}, Policy(category_map={"music": "dj"}, default_llm="gen",
                                                       confidence_threshold=0.55, fallback_llm="gen"))
    dj, gen = router.llm_names.index("dj"), router.llm_names.index("gen")
    assert out["llm"].tolist() == [dj, gen, gen] and out["fallback"].tolist() == [False, False, True]
    torch.testing.assert_close(out["utilities"][0, [dj, gen]], torch.tensor([0.9, 0.1]))


# ------------------------------------------------------------------ CLI: route, calibrate, export

def test_route_single_batch_and_evaluate(label_run, tmp_path, capsys):
    run = label_run["run"]
    code, out, err = cli(capsys, route_main, f"router={run}", "query=will it rain in rome tomorrow")
    assert code == 0, err
    d = json.loads(out)
    assert d["llm"] is None and d["category"] in TOPICS and d["fallback"] is False

    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "query": "skip this song"}, {"id": "b", "query": "hi"}])
    code, _, err = cli(capsys, route_main, f"router={run}", "mode=batch", f"input={src}",
                       f"output={tmp_path / 'out.jsonl'}")
    assert code == 0, err
    rows = [json.loads(l) for l in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"] and all(r["category"] in TOPICS for r in rows)

    rm = tmp_path / "rm.yaml"
    rm.write_text(yaml.safe_dump({"policy": {"default_llm": "gen", "confidence_threshold": 0.6}}))
    code, out, err = cli(capsys, route_main, f"router={run}", "mode=evaluate", f"input={label_run['heldout']}",
                         f"out={tmp_path / 'eval'}", f"route_map={rm}")
    assert code == 0, err
    m = route_metrics(tmp_path / "eval")
    assert m["n_out_of_scope"] == label_run["n_oos"]
    assert 0 <= m["in_scope_accuracy"] <= m["accuracy"] <= 1 and 0 <= m["oos_recall"] <= 1
    assert "in-scope accuracy" in out and "out-of-scope recall" in out
    # the same numbers from the decisions themselves
    held = [json.loads(l) for l in label_run["heldout"].read_text().splitlines()]
    router = Router.load(run, route_map=str(rm))
    ds = router.route_batch([h["query"] for h in held])
    oos = [d.fallback for d, h in zip(ds, held) if h["label"] == "oos"]
    inside = [not d.fallback and d.category == h["label"] for d, h in zip(ds, held) if h["label"] != "oos"]
    assert m["oos_recall"] == pytest.approx(sum(oos) / len(oos))
    assert m["in_scope_accuracy"] == pytest.approx(sum(inside) / len(inside))
    report = (tmp_path / "eval" / "report.txt").read_text()
    assert "oos" in report.split("confusion matrix")[1]  # out of scope is a class of the confusion matrix


@pytest.mark.parametrize("target", [0.5, 1.0])
def test_calibrate_picks_the_threshold_for_a_target_oos_recall(label_run, tmp_path, capsys, target):
    out = tmp_path / "exp"
    rm = tmp_path / "rm.yaml"
    rm.write_text(yaml.safe_dump({"policy": {"category_map": {"weather": "w"}, "default_llm": "gen"}}))
    code, _, err = cli(capsys, export_main, f"ckpt_path={label_run['run']}", f"out={out}", f"route_map={rm}")
    assert code == 0, err
    code, stdout, err = cli(capsys, calibrate_main, f"router={out}", f"input={label_run['heldout']}",
                            f"target_oos_recall={target}")
    assert code == 0, err
    meta = yaml.safe_load((out / "router.yaml").read_text())
    thr = meta["policy"]["confidence_threshold"]
    assert meta["calibration"]["target_oos_recall"] == target and meta["calibration"]["oos_recall"] >= target
    assert meta["policy"]["category_map"] == {"weather": "w"}  # the exported route map's policy is kept
    curve = json.loads((out / "calibration.json").read_text())["curve"]
    # the best in-scope accuracy among the thresholds that reach the target
    best = max(p["in_scope_accuracy"] for p in curve if p["oos_recall"] >= target)
    assert meta["calibration"]["in_scope_accuracy"] == best

    # The reloaded router applies it: the evaluate report agrees with the calibration
    assert Router.load(out).policy.confidence_threshold == thr
    code, _, err = cli(capsys, route_main, f"router={out}", "mode=evaluate", f"input={label_run['heldout']}",
                       f"out={tmp_path / 'eval'}")
    assert code == 0, err
    m = route_metrics(tmp_path / "eval")
    assert m["oos_recall"] == pytest.approx(meta["calibration"]["oos_recall"])
    assert m["in_scope_accuracy"] == pytest.approx(meta["calibration"]["in_scope_accuracy"])


def test_calibrate_errors_are_one_line(label_run, tmp_path, capsys):
    run = label_run["run"]
    in_scope = write_jsonl(tmp_path / "in.jsonl", [{"query": "skip this song", "label": "music"}])
    for args, needle in [
        ([f"input={label_run['heldout']}", "target_cost=0.3"], "give target_oos_recall"),
        ([f"input={label_run['heldout']}", "target_oos_recall=1.5"], "expected a recall in (0, 1]"),
        ([f"input={in_scope}", "target_oos_recall=0.9"], "out-of-scope ones"),
        ([f"input={label_run['heldout']}", "target_oos_recall=0.9", "loader=nope"], "Could not find 'loader/nope'"),
        ([f"input={label_run['heldout']}", "target_oos_recall=0.9", "+loader.sep=x"], "does not take"),
    ]:
        code, _, err = cli(capsys, calibrate_main, f"router={run}", "save=false", *args)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, (args, err)


# ------------------------------------------------------------------ the proxy

def test_proxy_forwards_by_category_and_says_it_in_headers(label_run):
    run = label_run["run"]
    with run_in_thread(loopback_upstream("W")) as w, run_in_thread(loopback_upstream("G")) as g:
        route_map = {"endpoints": {"weather-bot": {"model": "wx", "base_url": f"{w}/v1"},
                                   "generalist": {"model": "gen", "base_url": f"{g}/v1"}},
                     "policy": {"category_map": {"weather": "weather-bot"}, "default_llm": "generalist"}}
        router = Router.load(run, route_map=route_map)
        msgs = [{"role": "user", "content": "will it rain in rome tomorrow"}]
        expected = router.route(msgs)
        with run_in_thread(create_app(router, timeout=5.0)) as proxy:
            client = openai.OpenAI(base_url=proxy + "/v1", api_key="unused", max_retries=0, timeout=10)
            raw = client.chat.completions.with_raw_response.create(model="auto", messages=msgs)
            assert raw.headers["x-router-category"] == expected.category
            assert raw.headers["x-router-llm"] == expected.llm
            answer = raw.parse().choices[0].message.content
            assert answer.startswith("W answered wx" if expected.llm == "weather-bot" else "G answered gen")
            ids = [m["id"] for m in httpx.get(proxy + "/v1/models", timeout=5).json()["data"]]
            assert ids == ["auto", "weather-bot", "generalist"]
    # A route map that leaves categories without an LLM cannot serve
    with pytest.raises(UserError, match="to no LLM; expected policy.category_map for each or policy.default_llm"):
        create_app(Router.load(run, route_map={"policy": {"category_map": {"weather": "w"}}}))


def test_the_clinc150_route_map_names_clinc_domains_and_its_endpoints():
    from router_lab.api import load_route_map

    rm = load_route_map(Path(__file__).resolve().parents[1] / "conf" / "route_maps" / "clinc150.yaml")
    assert rm["policy"]["default_llm"] in rm["endpoints"] and rm["policy"]["fallback_llm"] in rm["endpoints"]
    assert set(rm["policy"]["category_map"].values()) <= set(rm["endpoints"])
    if CLINC.is_file():
        domains = json.loads((CLINC.parent / "domains.json").read_text())
        assert set(rm["policy"]["category_map"]) <= set(domains)


# ------------------------------------------------------------------ CLINC150 (../shared)

CLINC = Path(os.environ.get("ROUTER_LAB_DATA_DIR", SHARED_DATA)) / "clinc150" / "clinc150_train_val.json"


@pytest.mark.slow  # ~100 s of CPU: encodes all 21 000 CLINC150 texts
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not CLINC.is_file(), reason=f"CLINC150 not found at {CLINC} (../shared/data or "
                                                "ROUTER_LAB_DATA_DIR)")
def test_clinc150_domain_router_calibrates_on_val_and_oos_val(tmp_path, capsys):
    """A domain router trained (1 epoch, tiny encoder) on CLINC150, its threshold calibrated on
    val + oos_val through the clinc150 loader, then evaluated on oos_train + val."""
    from router_lab.train import train

    enc = make_tiny_encoder("bert", tmp_path / "tiny_bert")
    run = tmp_path / "run"
    cfg = compose([f"paths.cache_dir={tmp_path / 'cache'}", "logger=none", "trainer.accelerator=cpu",
                   "extras.print_config=false", "data=clinc150", f"data.source.path={CLINC}", "trainer.max_epochs=1",
                   f"encoder.pretrained={enc}", "encoder.name=tiny_bert", "encoder.max_length=32"], output_dir=run)
    metrics, _ = train(cfg)
    assert metrics["val/router/fallback_rate"] == 0.0
    from omegaconf import OmegaConf

    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    out = tmp_path / "exp"
    assert cli(capsys, export_main, f"ckpt_path={run}", f"out={out}")[0] == 0
    clinc = ["loader=clinc150", "loader.label=domain", "loader.include_oos=true"]
    code, stdout, err = cli(capsys, calibrate_main, f"router={out}", f"input={CLINC}", *clinc, "loader.split=val",
                            "target_oos_recall=0.8")
    assert code == 0, err
    chosen = json.loads(stdout.splitlines()[0])
    assert chosen["n"] == 3100 and chosen["n_out_of_scope"] == 100 and chosen["oos_recall"] >= 0.8
    code, _, err = cli(capsys, route_main, f"router={out}", "mode=evaluate", f"input={CLINC}", *clinc,
                       "loader.split=val", f"out={tmp_path / 'eval'}")
    assert code == 0, err
    m = route_metrics(tmp_path / "eval")
    assert m["n"] == 3100 and m["n_out_of_scope"] == 100
    assert m["oos_recall"] == pytest.approx(chosen["oos_recall"])
    assert m["in_scope_accuracy"] == pytest.approx(chosen["in_scope_accuracy"])
