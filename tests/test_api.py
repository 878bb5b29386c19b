"""Router.load / route / route_batch on every router family (tiny random encoder, trained
in-process once per module): run dir, checkpoint and export load alike; conversations,
empty and over-long queries, the serving policy."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from router_lab.api import Router, RoutingDecision
from router_lab.data.records import render_conversation
from router_lab.errors import UserError

MODEL_CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
#: Overrides that keep a family's tiny run tiny; every conf/model/<family>.yaml is a family
#: (a new family gets its rows here by adding its config).
TINY = {"routerdc": ["model.projection_dim=16", "model.cluster_loss_weight=0"]}
FAMILIES = {"classifier_frozen": [], "classifier_finetuned": ["encoder.frozen=false"]} | {
    f.stem: [f"model={f.stem}", *TINY.get(f.stem, [])] for f in sorted(MODEL_CONF.glob("*.yaml"))
    if f.stem != "classifier"}


def family_available(name: str) -> bool:
    return name in FAMILIES


def train_tiny_run(root: Path, family: str = "classifier_frozen", extra: list[str] | None = None) -> Path:
    """A real run dir (checkpoints/best.ckpt, .hydra/config.yaml) of a router on a tiny
    random BERT, one epoch on 300 synthetic queries."""
    from omegaconf import OmegaConf

    from conftest import compose, make_tiny_encoder
    from router_lab.train import train

    enc = root / "tiny_bert"
    if not enc.exists():
        make_tiny_encoder("bert", enc)
    run = root / family
    cfg = compose([f"paths.cache_dir={root / 'cache'}", "logger=none", "trainer.accelerator=cpu",
                   "extras.print_config=false", "data.train.n_train=300", "data.val.n_val=60",
                   "data.test.test.n_test=60", "trainer.max_epochs=1", f"encoder.pretrained={enc}",
                   "encoder.name=tiny_bert", "encoder.max_length=32", *FAMILIES[family], *(extra or [])],
                  output_dir=run)
    train(cfg)
    # compose() has no Hydra run, so write the run's config as Hydra would.
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api_runs")
    return {f: train_tiny_run(root, f) for f in FAMILIES if family_available(f)}


QUERIES = ["What is 2+2?", "Write a python function that reverses a list", "Translate 'good morning' to French"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_run_dir_checkpoint_and_export_route_alike(runs, family, tmp_path):
    if family not in runs:
        pytest.skip(f"{family} not in this checkout")
    from router_lab.export import export_router

    by_run = Router.load(runs[family])
    by_ckpt = Router.load(runs[family] / "checkpoints" / "best.ckpt")
    exported = Router.load(export_router(by_run, tmp_path / "exp"))
    ref = by_run.route_batch(QUERIES)
    assert all(isinstance(d, RoutingDecision) for d in ref)
    for other in (by_ckpt, exported):
        got = other.route_batch(QUERIES)
        assert [d.llm for d in got] == [d.llm for d in ref]
        for a, b in zip(got, ref):
            assert a.confidence == pytest.approx(b.confidence, abs=1e-5)
            assert a.scores == pytest.approx(b.scores, abs=1e-5)
    d = ref[0]
    assert d.llm in by_run.llm_names and set(d.scores) == set(by_run.llm_names)
    assert d.cost == pytest.approx(by_run.llm_costs[by_run.llm_names.index(d.llm)])
    assert isinstance(d.fallback, bool) and 0.0 <= d.confidence <= 1.0


@pytest.mark.parametrize("family", ["classifier_frozen", "classifier_finetuned"])
def test_route_batch_matches_single_routes_in_input_order(runs, family):
    # micro_batch=2 < len(queries): the batch is length-sorted and split, then put back in order
    router = Router.load(runs[family], micro_batch=2)
    queries = QUERIES + ["hi", "Explain, step by step and with an example, how a B-tree keeps itself balanced"]
    batch = router.route_batch(queries)
    assert len(batch) == len(queries)
    for q, d in zip(queries, batch):
        single = router.route(q)
        assert single.llm == d.llm
        assert single.scores == pytest.approx(d.scores, abs=1e-4)  # padding changes the float sums slightly
    assert router.route_batch([]) == []


def test_int8_quantised_router_agrees_with_float_and_refuses_unknown_modes(runs):
    ref = Router.load(runs["classifier_finetuned"])
    q = Router.load(runs["classifier_finetuned"], quantize="int8")
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in q.model.encoder.modules())
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in ref.model.encoder.modules())
    for a, b in zip(ref.route_batch(QUERIES), q.route_batch(QUERIES)):
        assert set(b.scores) == set(a.scores)
        assert b.scores == pytest.approx(a.scores, abs=0.05)
    assert q.describe()["quantize"] == "int8"
    with pytest.raises(UserError, match="quantize='fp4'; expected one of"):
        Router.load(runs["classifier_frozen"], quantize="fp4")
    with pytest.raises(UserError, match="micro_batch=0"):
        Router.load(runs["classifier_frozen"], micro_batch=0)


def test_conversation_routes_on_every_turn_rendered_as_in_training(runs):
    router = Router.load(runs["routerdc"] if "routerdc" in runs else runs["classifier_frozen"])
    turns = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi, how can I help?"},
             {"role": "user", "content": "integrate x^2 from 0 to 1"}]
    conv = router.route(turns)
    assert conv.scores == pytest.approx(router.route(render_conversation(turns)).scores, abs=1e-6)
    assert conv.scores != pytest.approx(router.route(turns[-1]["content"]).scores, abs=1e-6)
    # OpenAI content parts: the text parts count
    parts = [{"role": "user", "content": [{"type": "text", "text": "integrate x^2 from 0 to 1"}]}]
    assert router.route(parts).scores == pytest.approx(router.route("user: integrate x^2 from 0 to 1").scores)


@pytest.mark.parametrize("bad", ["", "   \n", [], [{"role": "user", "content": ""}], 42])
def test_empty_or_malformed_queries_are_one_line_user_errors(runs, bad):
    router = Router.load(runs["classifier_frozen"])
    with pytest.raises(UserError) as e:
        router.route(bad)
    assert "\n" not in str(e.value)


def test_overlong_query_is_truncated_and_said_once(runs, caplog):
    router = Router.load(runs["classifier_frozen"])
    long = "a very long question " * 200
    with caplog.at_level(logging.WARNING, logger="router_lab.api"):
        ds = router.route_batch([long, "short", long])
        router.route(long)
    assert [d.truncated for d in ds] == [True, False, True]
    assert sum("truncated" in r.getMessage() for r in caplog.records) == 1
    assert ds[0].llm == ds[2].llm


def test_policy_threshold_fallback_cost_lambda_and_categories(runs):
    router = Router.load(runs["classifier_frozen"], route_map={"policy": {"confidence_threshold": 1.01,
                                                                          "fallback_llm": "generalist-70b"}})
    ds = router.route_batch(QUERIES)
    assert all(d.llm == "generalist-70b" and d.fallback for d in ds)

    cheapest = Router.load(runs["classifier_frozen"], route_map={"policy": {"cost_lambda": 0.0}})
    assert {d.llm for d in cheapest.route_batch(QUERIES)} == {"tiny-chat-1b"}  # lambda 0: cost only
    richest = Router.load(runs["classifier_frozen"], route_map={"policy": {"cost_lambda": float("inf")}})
    raw, _ = richest.decide_texts(QUERIES)
    assert [richest.llm_names.index(d.llm) for d in richest.route_batch(QUERIES)] == \
        raw["utilities"].argmax(-1).tolist()

    base = Router.load(runs["classifier_frozen"])
    cat = base.route(QUERIES[0]).category
    remap = Router.load(runs["classifier_frozen"], route_map={"policy": {"category_map": {cat: "code-specialist-7b"}}})
    assert remap.route(QUERIES[0]).llm == "code-specialist-7b"


@pytest.mark.parametrize("policy,needle", [
    ({"fallback_llm": "nope"}, "unknown LLM 'nope'"),
    ({"confidence_threshold": 0.5}, "fallback_llm is not"),
    ({"threshold": 0.5}, "unknown policy key"),
    ({"default_llm": "frontier-xl"}, "only for category routers"),
])
def test_bad_policy_is_one_clear_error(runs, policy, needle):
    with pytest.raises(UserError, match=needle):
        Router.load(runs["classifier_frozen"], route_map={"policy": policy})


def test_apply_policy_on_hand_built_decision(runs):
    router = Router.load(runs["classifier_frozen"])
    n = len(router.llm_names)
    util = torch.zeros(2, n)
    util[0, n - 1], util[1, 0] = 0.9, 0.6
    util[1, n - 1] = 0.7
    d = {"llm": torch.tensor([n - 1, n - 1]), "utilities": util, "confidence": torch.tensor([0.9, 0.4]),
         "fallback": torch.tensor([False, False])}
    from router_lab.api import Policy

    # lambda * util - cost: row 1 prefers the cheap LLM 0 once 0.1 of quality is worth < its price gap
    out = router.apply_policy(d, Policy(cost_lambda=10.0))
    assert out["llm"].tolist() == [n - 1, 0]
    out = router.apply_policy(d, Policy(confidence_threshold=0.5, fallback_llm=router.llm_names[2]))
    assert out["llm"].tolist() == [n - 1, 2] and out["fallback"].tolist() == [False, True]


def test_load_errors_name_what_is_missing(runs, tmp_path):
    with pytest.raises(UserError, match="no such file"):
        Router.load(tmp_path / "nowhere")
    empty = tmp_path / "empty_run"
    (empty / ".hydra").mkdir(parents=True)
    with pytest.raises(UserError, match="checkpoints/best.ckpt"):
        Router.load(empty)


def test_a_routerbench_router_routes_a_k_shot_prompt_as_its_final_question(tmp_path, tiny_bert):
    """Trained on the final question of k-shot prompts (data=routerbench's default), the router
    reduces a routed k-shot prompt the same way — from its run dir and from its export — rather
    than encoding exemplars it never saw in training. A tampered export naming another
    preparation is one error line."""
    import yaml
    from omegaconf import OmegaConf

    from conftest import compose
    from router_lab.export import export_router
    from router_lab.train import train
    from test_datamodule import _rb_csv

    d = tmp_path / "rb"
    d.mkdir()
    for task in ("arc", "wino"):
        _rb_csv(d / f"{task}_train.csv", task, n=40)
    run = tmp_path / "run"
    cfg = compose(["data=routerbench", f"data.dir={d}", f"paths.cache_dir={tmp_path / 'cache'}", "logger=none",
                   "model=routerdc", "model.cluster_loss_weight=0", "model.top_k=1", "model.last_k=1", "trainer.max_epochs=1",
                   "callbacks=none",
                   "extras.print_config=false", f"encoder.pretrained={tiny_bert}", "encoder.name=tiny_bert",
                   "encoder.max_length=32"], output_dir=run)
    train(cfg)
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    export_router(Router.load(run), tmp_path / "export")
    shots = "\n\n".join(f"exemplar question {i} about something else entirely\nAnswer: B" for i in range(5))
    asked = "Which gas do plants take in?\nA) oxygen\nB) carbon dioxide\nAnswer:"
    for src in (run, tmp_path / "export"):
        r = Router.load(src)
        assert r.query_prep == "final_question"
        k_shot, bare = r.route_batch([f"{shots}\n\n{asked}", asked])
        assert k_shot.llm == bare.llm and k_shot.scores == bare.scores
    meta = yaml.safe_load((tmp_path / "export" / "router.yaml").read_text())
    meta["hparams"]["data_info"]["query_prep"] = "os.system"
    (tmp_path / "export" / "router.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(UserError, match=r"query_prep='os.system'; expected one of \['final_question'\]"):
        Router.load(tmp_path / "export")
