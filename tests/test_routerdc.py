"""RouterDC: similarity and routing on hand-built inputs, the experiment configs, and the real
entry point on a tiny split2-format fixture (frozen MiniLM; fine-tuned tiny BERT).

    python -m pytest tests/test_routerdc.py -q
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, compose
from router_lab.errors import UserError
from router_lab.models.routerdc import RouterDC, llm_similarity

LLMS = ["mistralai/Mistral-7B-v0.1", "meta-math/MetaMath-Mistral-7B", "itpossible/Chinese-Mistral-7B-v0.1",
        "HuggingFaceH4/zephyr-7b-beta", "cognitivecomputations/dolphin-2.6-mistral-7b", "meta-llama/Meta-Llama-3-8B",
        "cognitivecomputations/dolphin-2.9-llama3-8b"]
TRAIN = ["mmlu_train", "gsm8k-train", "cmmlu_train", "arc_challenge_train", "humaneval_train"]
TEST = ["mmlu_test", "gsm8k-test", "cmmlu_test", "arc_challenge_test", "humaneval_test", "MATH_prealgebra", "mbpp",
        "ceval", "javascript"]
WORDS = {"mmlu": "history law", "gsm8k": "apples sum", "cmmlu": "zhongguo wenhua", "arc": "science rock",
         "humaneval": "def python", "MATH": "fraction solve", "mbpp": "function list", "ceval": "kaoshi ti",
         "javascript": "const node"}


def write_split2(root: Path, n: int = 8, cluster: bool = True, llms: list[str] | None = None,
                 llms_for: dict[str, list[str]] | None = None) -> Path:
    """A split2-shaped data dir: <root>/routerdc/split2_model7{,_cluster}/<file>.json, n items
    each; the task's 'expert' LLM (task index mod 7) scores 1, the others 0 or 0.5."""
    rng = np.random.default_rng(0)
    for folder, files in (("split2_model7_cluster", TRAIN), ("split2_model7", TEST)):
        d = root / "routerdc" / folder
        d.mkdir(parents=True, exist_ok=True)
        for t, f in enumerate(files):
            names = (llms_for or {}).get(f, llms or LLMS)
            key = next(k for k in WORDS if f.startswith(k))
            items = []
            for i in range(n):
                scores = {m: float(rng.choice([0.0, 0.5])) for m in names}
                scores[names[t % len(names)]] = 1.0
                item = {"question": f"{WORDS[key]} question {i} {rng.integers(1000)}", "scores": scores}
                if cluster and folder.endswith("cluster"):
                    item["cluster_id"] = t % 3
                items.append(item)
            (d / f"{f}.json").write_text(json.dumps(items))
    return root


def split2_overrides(root: Path, n_items: int = 16) -> list[str]:
    return [f"paths.data_dir={root}"] + [f"data.train.{i}.n_items={n_items}" for i in range(len(TRAIN))]


# ---------------------------------------------------------------- pure pieces

def test_similarity_on_hand_built_vectors():
    q = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert torch.allclose(llm_similarity(q, e, "cos"), torch.tensor([[0.6, 0.8], [1.0, 0.0]]))
    assert torch.allclose(llm_similarity(q, e, "dot"), torch.tensor([[3.0, 8.0], [1.0, 0.0]]))


def _frozen_model(**kw) -> RouterDC:
    info = {"llm_names": ["a", "b", "c"], "llm_costs": [0.0, 1.0, 4.0], "embedding_dim": 2, "has_scores": True,
            "has_cluster_ids": True}
    return RouterDC(info, {"name": "x", "frozen": True}, **kw)


def test_decide_pure_quality_and_willingness_to_pay():
    m = _frozen_model(temperature=1.0)
    logits = torch.log(torch.tensor([[0.1, 0.3, 0.6]]))  # softmax quality = (0.1, 0.3, 0.6)
    batch = {}
    assert m._decide(logits, batch)["llm"].tolist() == [2]
    assert torch.allclose(m._decide(logits, batch)["utilities"], torch.tensor([[0.1, 0.3, 0.6]]))
    # lambda = 8: 0.8 - 0, 2.4 - 1, 4.8 - 4 = 0.8, 1.4, 0.8 -> b
    assert m._decide(logits, batch, cost_lambda=8.0)["llm"].tolist() == [1]
    # lambda = 20: 2, 5, 8 -> c; lambda = 1: 0.1, -0.7, -3.4 -> a
    assert m._decide(logits, batch, cost_lambda=20.0)["llm"].tolist() == [2]
    assert m._decide(logits, batch, cost_lambda=1.0)["llm"].tolist() == [0]
    # per-row costs in the batch win over the pool's
    assert m._decide(logits, {"costs": torch.tensor([[5.0, 5.0, 0.0]])}, cost_lambda=1.0)["llm"].tolist() == [2]


def test_calibration_turns_preference_shares_into_score_estimates():
    # LLM a: right 90% of the time whatever the router prefers; b: right exactly when the router
    # prefers it (share 0.8 vs 0.1); c: never right. Uncalibrated, the share ranks b first on
    # half the rows; calibrated, a's 90% beats b's 0 where b is not preferred.
    m = _frozen_model()
    g = torch.Generator().manual_seed(0)
    n = 400
    b_pref = torch.rand(n, generator=g) < 0.5
    shares = torch.where(b_pref[:, None], torch.tensor([0.1, 0.8, 0.1]), torch.tensor([0.45, 0.1, 0.45]))
    scores = torch.stack([(torch.rand(n, generator=g) < 0.9).float(), b_pref.float(), torch.zeros(n)], 1)
    logits = shares.log()
    assert not bool(m.calib_fitted) and torch.allclose(m.quality(logits), shares)
    m.fit_calibration(logits, scores, torch.ones(n, 3, dtype=torch.bool))
    q = m.quality(logits)
    assert abs(q[:, 0].mean().item() - 0.9) < 0.05              # a's rate, flat in the share
    assert q[b_pref, 1].min() > 0.9 and q[~b_pref, 1].max() < 0.1  # b: right iff preferred
    assert q[:, 2].max() < 0.1
    assert torch.equal(m._decide(logits, {})["llm"], torch.where(b_pref, 1, 0))
    # the buffers travel with the state dict; an old state dict without them loads uncalibrated
    m2 = _frozen_model()
    m2.load_state_dict(m.state_dict())
    assert torch.allclose(m2.quality(logits), q)
    old = {k: v for k, v in m.state_dict().items() if not k.startswith("calib_")}
    m3 = _frozen_model()
    m3.load_state_dict(old)
    assert not bool(m3.calib_fitted)


def test_training_targets_subtract_cost_rate_times_cost():
    m = _frozen_model(cost_rate=0.5)
    batch = {"scores": torch.tensor([[1.0, 1.0, 0.0]]), "score_mask": torch.tensor([[True, True, False]]),
             "costs": torch.tensor([[0.0, 1.0, 2.0]])}
    t = m.training_targets(batch)
    assert t[0, :2].tolist() == [1.0, 0.5] and t[0, 2] < -1e8


def test_llm_embeddings_init_and_projection_shapes():
    torch.manual_seed(0)
    m = RouterDC({"llm_names": [str(i) for i in range(50)], "embedding_dim": 400}, {"frozen": True},
                 llm_embedding_std=0.78, projection_dim=8)
    assert m.llm_embeddings.weight.shape == (50, 8)
    m2 = RouterDC({"llm_names": [str(i) for i in range(50)], "embedding_dim": 400}, {"frozen": True})
    assert abs(float(m2.llm_embeddings.weight.std()) - 0.78) < 0.02
    logits, q = m({"embedding": torch.randn(4, 400)})
    assert logits.shape == (4, 50) and q.shape == (4, 8)


def test_setup_rejects_top_k_plus_last_k_larger_than_pool_and_missing_cluster_ids():
    with pytest.raises(UserError, match="top_k \\+ model.last_k = 2 \\+ 2 exceeds the pool of 3"):
        _frozen_model(top_k=2, last_k=2).setup("fit")
    m = RouterDC({"llm_names": ["a", "b", "c"], "embedding_dim": 2, "has_scores": True, "has_cluster_ids": False},
                 {"frozen": True}, top_k=1, last_k=1)
    with pytest.raises(UserError, match="router_lab.clusters"):
        m.setup("fit")
    m.hparams.cluster_loss_weight = 0.0
    m.setup("fit")


def test_losses_are_weighted_and_differentiable():
    torch.manual_seed(0)
    m = _frozen_model(top_k=1, last_k=1, projection_dim=4, cluster_loss_weight=1.0, task_loss_weight=0.5, H=1)
    batch = {"embedding": torch.randn(6, 2), "scores": torch.rand(6, 3), "score_mask": torch.ones(6, 3, dtype=bool),
             "cluster_id": torch.tensor([0, 0, 1, 1, 2, 2]), "task_id": torch.tensor([0, 1, 0, 1, 0, 1])}
    parts = m.losses(batch)
    assert set(parts) == {"sample_llm", "cluster", "task", "loss"}
    assert torch.isclose(parts["loss"], parts["sample_llm"] + parts["cluster"] + 0.5 * parts["task"])
    parts["loss"].backward()
    assert m.projection[1].weight.grad is not None and m.llm_embeddings.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- configs

def test_experiment_composes_and_group_overrides_win():
    cfg = compose(["+experiment=routerdc_split2"])
    assert cfg.model._target_ == "router_lab.models.routerdc.RouterDC"
    assert (cfg.encoder.name, cfg.encoder.pooling, cfg.encoder.max_length, cfg.encoder.truncation_side,
            cfg.encoder.frozen) == ("mdeberta_v3_base", "cls", 512, "left", False)
    assert (cfg.trainer.max_steps, cfg.trainer.val_check_interval, cfg.data.batch_size) == (1000, 50, 64)
    assert cfg.trainer.check_val_every_n_epoch is None and cfg.data.val == "train"
    assert [t.n_items for t in cfg.data.train] == [1000] * 5
    assert (cfg.model.top_k, cfg.model.last_k, cfg.model.cluster_loss_weight, cfg.model.H, cfg.model.temperature,
            cfg.model.lr) == (3, 3, 1.0, 3, 1.0, 5e-5)
    cfg = compose(["+experiment=routerdc_split2", "encoder=minilm", "seed=7"])
    assert (cfg.encoder.name, cfg.encoder.pooling, cfg.encoder.frozen, cfg.seed) == ("minilm", "mean", True, 7)
    cfg = compose(["+experiment=routerdc_split2_minilm"])
    assert cfg.encoder.name == "minilm" and cfg.model.projection_dim > 0 and cfg.trainer.max_steps == 1000


# ---------------------------------------------------------------- end to end (tiny fixture)

def test_split2_experiment_frozen_minilm_end_to_end(tmp_path, cfg_factory):
    from router_lab.train import train

    root = write_split2(tmp_path / "data")
    cfg = cfg_factory(["+experiment=routerdc_split2_minilm", *split2_overrides(root), "trainer.max_steps=6",
                       "trainer.val_check_interval=3", "data.batch_size=16", "model.head_lr=1e-2"])
    metrics, objects = train(cfg)
    for name in ("mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval", "MATH_prealgebra", "mbpp", "ceval",
                 "javascript"):
        assert 0.0 <= metrics[f"{name}/router/acc_predict"] <= 1.0 and f"{name}/router/acc" in metrics
    for g in ("in_distribution", "out_of_distribution"):
        assert f"avg_{g}/router/acc_predict" in metrics and f"avg_{g}/best_per_task/acc_predict" in metrics
    out = Path(cfg.paths.output_dir)
    assert (out / "metrics.json").exists() and (out / "checkpoints" / "best.ckpt").exists()
    # The checkpoint reloads without Hydra.
    m = RouterDC.load_from_checkpoint(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert m.llm_names == LLMS


def test_split2_experiment_fine_tunes_tiny_bert(tmp_path, cfg_factory, tiny_bert):
    from router_lab.train import train

    root = write_split2(tmp_path / "data", n=4)
    cfg = cfg_factory(["+experiment=routerdc_split2", *split2_overrides(root, 8), f"encoder.pretrained={tiny_bert}",
                       "encoder.max_length=32", "trainer.max_steps=2", "trainer.val_check_interval=2",
                       "data.batch_size=8"])
    metrics, objects = train(cfg)
    assert "avg_in_distribution/router/acc_predict" in metrics
    assert objects["model"].encoder is not None


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "router_lab.train", *args, f"paths.log_dir={tmp_path}/out",
                           f"paths.cache_dir={tmp_path}/cache", "logger=none"],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=120)


def test_bad_pool_size_from_the_command_line_is_one_error_line_and_no_result(tmp_path):
    root = write_split2(tmp_path / "data")
    r = _cli(["+experiment=routerdc_split2_minilm", *split2_overrides(root), "trainer.max_steps=2", "model.top_k=4",
              "model.last_k=4"], tmp_path)
    assert r.returncode == 2, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "exceeds the pool of 7" in errors[0] and "Traceback" not in r.stderr
    assert not list((tmp_path / "out").rglob("metrics.json")) and "acc_predict" not in r.stdout


@pytest.mark.parametrize("case", ["no_cluster_id", "llm_names_differ"])
def test_bad_data_is_one_error_line_and_no_result(tmp_path, cfg_factory, capsys, case):
    from router_lab.errors import run_main
    from router_lab.train import train

    root = tmp_path / "data"
    if case == "no_cluster_id":
        write_split2(root, cluster=False)
    else:
        write_split2(root, llms_for={"cmmlu_train": LLMS[:6] + ["someone/Other-7B"]})
    cfg = cfg_factory(["+experiment=routerdc_split2_minilm", *split2_overrides(root), "trainer.max_steps=2"])
    with pytest.raises(SystemExit) as e:
        run_main(train, cfg)
    assert e.value.code == 2
    err = capsys.readouterr()
    errors = [line for line in err.err.splitlines() if line.startswith("error:")]
    expected = {"no_cluster_id": "router_lab.clusters", "llm_names_differ": "someone/Other-7B"}[case]
    assert len(errors) == 1 and expected in errors[0]
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists() and "acc_predict" not in err.out
