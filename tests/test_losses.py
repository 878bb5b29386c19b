"""Router losses on hand-built tensors; every expected value is worked out in the test."""
import math

import pytest
import torch

from router_lab.losses import (
    bce_pointwise_loss,
    bpr_loss,
    cluster_contrastive_loss,
    sample_llm_contrastive_loss,
    sample_sample_contrastive_loss,
    task_contrastive_loss,
)

E = math.e
LN2 = math.log(2.0)


# ---- sample-LLM loss ---------------------------------------------------------------------------


def test_sample_llm_loss_one_positive_two_negatives():
    # scores sorted: LLM0 (0.9) > LLM1 (0.6) > LLM2 (0.1) > LLM3 (0.0).
    # top_k=1 -> positive LLM0; last_k=2 -> negatives LLM2, LLM3.
    # softmax over [ln 3, ln 2, 0] = [3, 2, 1] / 6 -> -log(3/6) = ln 2. LLM1's logit 7 plays no part.
    logits = torch.tensor([[math.log(3.0), 7.0, math.log(2.0), 0.0]])
    scores = torch.tensor([[0.9, 0.6, 0.1, 0.0]])
    loss = sample_llm_contrastive_loss(logits, scores, top_k=1, last_k=2)
    assert loss.item() == pytest.approx(LN2)


def test_sample_llm_loss_sums_over_top_k_positives():
    # as above, plus a second positive LLM1 (logit 7) vs the same negatives (weights 2, 1):
    # -log(e^7 / (e^7 + 3)) = log(1 + 3 e^-7).
    logits = torch.tensor([[math.log(3.0), 7.0, math.log(2.0), 0.0]])
    scores = torch.tensor([[0.9, 0.6, 0.1, 0.0]])
    loss = sample_llm_contrastive_loss(logits, scores, top_k=2, last_k=2)
    assert loss.item() == pytest.approx(LN2 + math.log(1 + 3 * math.exp(-7.0)))


def test_sample_llm_loss_excludes_high_scoring_negative_and_zero_score_positive():
    # row 0: positive LLM0 (1.0); negatives LLM1 (0.9 > 0.5 -> excluded), LLM2, LLM3 (0.0).
    #   softmax over [ln 2, 0, 0] -> 2/4 -> ln 2 (with LLM1's logit 5 it would be far larger).
    # row 1: every score is 0, so its positive failed and it contributes 0 ...
    # ... but still counts in the batch mean: (ln 2 + 0) / 2.
    logits = torch.tensor([[LN2, 5.0, 0.0, 0.0], [3.0, -1.0, 2.0, 0.5]])
    scores = torch.tensor([[1.0, 0.9, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    loss = sample_llm_contrastive_loss(logits, scores, top_k=1, last_k=3, neg_score_max=0.5)
    assert loss.item() == pytest.approx(LN2 / 2)


def test_sample_llm_loss_tied_scores_never_make_a_positive_its_own_negative():
    # scores [1, .3, .3, .3]; stable sort -> positives LLM0, LLM1; negatives LLM2, LLM3.
    # term 0: [0 | 0, 0] -> ln 3; term 1: [ln 2 | 0, 0] -> -log(2/4) = ln 2; total ln 6.
    logits = torch.tensor([[0.0, LN2, 0.0, 0.0]])
    scores = torch.tensor([[1.0, 0.3, 0.3, 0.3]])
    loss = sample_llm_contrastive_loss(logits, scores, top_k=2, last_k=2)
    assert loss.item() == pytest.approx(math.log(6.0))


def test_sample_llm_loss_rejects_top_k_plus_last_k_beyond_pool():
    logits = torch.zeros(2, 5)
    with pytest.raises(ValueError, match="top_k \\+ last_k = 6 exceeds the pool of 5 LLMs"):
        sample_llm_contrastive_loss(logits, torch.ones(2, 5), top_k=3, last_k=3)
    with pytest.raises(ValueError, match="exceeds the pool of 5 LLMs"):
        sample_llm_contrastive_loss(logits, torch.ones(2, 5), top_k=6, last_k=0)


# ---- sample-sample (cluster / task) loss ---------------------------------------------------------


def test_cluster_loss_value_fixed_whatever_is_sampled():
    # Two groups of identical unit vectors: any positive has cosine 1, any negative cosine 0.
    # H=1, temperature 1: each row -log(e / (e + 1)) = log(1 + e^-1).
    embeddings = torch.tensor([[2.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    groups = torch.tensor([0, 0, 1, 1])
    loss = cluster_contrastive_loss(embeddings, groups, H=1, generator=torch.Generator().manual_seed(0))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1.0)))
    # temperature 0.5 doubles the similarity gap: log(1 + e^-2).
    loss = cluster_contrastive_loss(embeddings, groups, H=1, temperature=0.5, generator=torch.Generator())
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-2.0)))


def test_sample_sample_loss_singleton_groups_force_every_draw():
    # Each known row is alone in its group (positive = itself, cosine 1) and has exactly
    # H=2 rows in other groups, so both are drawn. Row 3 is unknown (-1) and ignored.
    #   row 0 [1,0]:  negatives [0,1] (0), [-1,0] (-1) -> log((e + 1 + 1/e) / e)
    #   row 1 [0,1]:  negatives [1,0] (0), [-1,0] (0)  -> log((e + 2) / e)
    #   row 2 [-1,0]: negatives [1,0] (-1), [0,1] (0)  -> log((e + 1 + 1/e) / e)
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [5.0, 5.0]])
    groups = torch.tensor([0, 1, 2, -1])
    loss = sample_sample_contrastive_loss(embeddings, groups, num_negatives=2, generator=torch.Generator())
    expected = (2 * math.log((E + 1 + 1 / E) / E) + math.log((E + 2) / E)) / 3
    assert loss.item() == pytest.approx(expected)


def test_sample_sample_loss_skips_rows_short_of_negatives():
    # H=2: rows 0-2 (group 0) see only 1 other-group row -> skipped. Row 3 (group 1, alone)
    # sees 3 candidates, all [1,0] at cosine 1/sqrt(2) from [1,1]; positive is itself (cosine 1).
    # loss = -log(e / (e + 2 e^(1/sqrt 2))).
    embeddings = torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [1.0, 1.0]])
    groups = torch.tensor([0, 0, 0, 1])
    loss = task_contrastive_loss(embeddings, groups, H=2, generator=torch.Generator().manual_seed(3))
    neg = math.exp(1 / math.sqrt(2))
    assert loss.item() == pytest.approx(-math.log(E / (E + 2 * neg)))


def test_sample_sample_loss_is_zero_and_differentiable_when_no_row_qualifies():
    embeddings = torch.randn(4, 3, requires_grad=True)
    loss = sample_sample_contrastive_loss(embeddings, torch.tensor([0, 0, -1, -1]), num_negatives=1)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros(4, 3))


def test_sample_sample_loss_is_deterministic_under_a_seeded_generator():
    embeddings = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2])
    first = sample_sample_contrastive_loss(embeddings, groups, 3, generator=torch.Generator().manual_seed(7))
    second = sample_sample_contrastive_loss(embeddings, groups, 3, generator=torch.Generator().manual_seed(7))
    assert first.item() == second.item()


# ---- BPR ---------------------------------------------------------------------------------------

# gaps d = s_pref - s_other = [2, -1, 0]; the last pair is a tie.
PREFERRED = torch.tensor([2.0, 0.0, 1.0])
OTHER = torch.tensor([0.0, 1.0, 1.0])
TIES = torch.tensor([False, False, True])


def test_bpr_loss_margin_zero_at_equal_scores_is_log_two():
    assert bpr_loss(torch.tensor([1.0]), torch.tensor([1.0]), margin=0.0).item() == pytest.approx(LN2)
    # a gap equal to the margin costs the same.
    assert bpr_loss(torch.tensor([1.5]), torch.tensor([0.5]), margin=1.0).item() == pytest.approx(LN2)


def test_bpr_loss_skips_ties():
    # margin 1: -log sigmoid(2 - 1) = log(1 + e^-1); -log sigmoid(-1 - 1) = log(1 + e^2).
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(2.0))) / 2
    assert bpr_loss(PREFERRED, OTHER, margin=1.0, is_tie=TIES, tie_mode="skip").item() == pytest.approx(expected)


def test_bpr_loss_counts_ties_as_half_a_win_each_way():
    # tie with d = 0: 0.5 * -log sigmoid(-1) + 0.5 * -log sigmoid(-1) = log(1 + e).
    expected = (math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(2.0)) + math.log(1 + E)) / 3
    assert bpr_loss(PREFERRED, OTHER, margin=1.0, is_tie=TIES, tie_mode="half").item() == pytest.approx(expected)


def test_bpr_loss_all_ties_skipped_is_zero_and_unknown_mode_raises():
    s = torch.tensor([1.0, 2.0], requires_grad=True)
    loss = bpr_loss(s, torch.zeros(2), is_tie=torch.tensor([True, True]))
    assert loss.item() == 0.0
    loss.backward()
    with pytest.raises(ValueError, match="tie_mode='third'"):
        bpr_loss(PREFERRED, OTHER, tie_mode="third")


# ---- BCE ---------------------------------------------------------------------------------------


def test_bce_pointwise_loss_hand_values():
    # entry 0: sigmoid(0) = 1/2 vs target 1/2 -> ln 2 (a tie is just a 0.5 target).
    # entry 1: sigmoid(ln 3) = 3/4 vs target 1 -> -log(3/4) = ln(4/3).
    # entry 2: NaN target -> excluded. Mean: (ln 2 + ln 4/3) / 2.
    logits = torch.tensor([0.0, math.log(3.0), 2.0])
    targets = torch.tensor([0.5, 1.0, float("nan")])
    assert bce_pointwise_loss(logits, targets).item() == pytest.approx((LN2 + math.log(4 / 3)) / 2)
    mask = torch.tensor([True, False, True])
    assert bce_pointwise_loss(logits, targets, mask).item() == pytest.approx(LN2)


def test_bce_pointwise_loss_matches_manual_formula():
    logits = torch.tensor([[-1.0, 0.3], [2.0, 0.0]])
    targets = torch.tensor([[0.0, 0.25], [1.0, 0.5]])
    p = torch.sigmoid(logits)
    manual = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    assert bce_pointwise_loss(logits, targets).item() == pytest.approx(manual.item())


# ---- gradients -----------------------------------------------------------------------------------


def test_every_loss_passes_a_finite_nonzero_gradient():
    logits = torch.tensor([[0.1, 0.5, -0.2, 0.3], [0.4, -0.1, 0.2, 0.0]], requires_grad=True)
    scores = torch.tensor([[1.0, 0.9, 0.0, 0.0], [0.7, 0.0, 0.2, 1.0]])
    embeddings = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)).requires_grad_()
    targets = torch.tensor([[1.0, float("nan"), 0.0, 0.5], [0.0, 1.0, float("nan"), 1.0]])
    losses = {
        "sample_llm": (sample_llm_contrastive_loss(logits, scores, top_k=1, last_k=3), logits),
        "cluster": (
            cluster_contrastive_loss(embeddings, torch.tensor([0, 0, 1, 1, 2, 2]), H=2, generator=torch.Generator()),
            embeddings,
        ),
        "bpr_half": (
            bpr_loss(logits[:, 0], logits[:, 1], is_tie=torch.tensor([False, True]), tie_mode="half"),
            logits,
        ),
        "bce": (bce_pointwise_loss(logits, targets), logits),
    }
    for name, (loss, leaf) in losses.items():
        leaf.grad = None
        loss.backward()
        assert torch.isfinite(leaf.grad).all(), name
        assert leaf.grad.abs().sum() > 0, name


# ---- tie-breaking among equally-scored LLMs ---------------------------------------------------


def test_rank_llms_pool_order_is_the_papers_rule():
    from router_lab.losses import rank_llms

    scores = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    assert rank_llms(scores, "pool_order").tolist() == [[0, 2, 3, 1]]


def test_rank_llms_cheapest_prefers_the_cheaper_equally_correct_llm():
    from router_lab.losses import rank_llms

    scores = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 0.0]])
    costs = torch.tensor([3.0, 0.5, 1.0, 2.0])
    # row 0: correct LLMs 0, 2, 3 by cost (1.0, 2.0, 3.0) -> 2, 3, 0; then the wrong LLM 1
    # row 1: correct 1 (0.5) before 2 (1.0); wrong 3 (2.0) before 0 (3.0)
    order = rank_llms(scores, "cheapest", costs, torch.Generator().manual_seed(0))
    assert order.tolist() == [[2, 3, 0, 1], [1, 2, 3, 0]]
    with pytest.raises(ValueError, match="needs costs"):
        rank_llms(scores, "cheapest")


def test_rank_llms_random_has_no_pool_order_bias():
    from router_lab.losses import rank_llms

    # LLMs 0, 1, 2 are tied at 1, LLM 3 is wrong: over many draws each tied LLM comes first
    # about a third of the time, and the wrong one never before a correct one.
    g = torch.Generator().manual_seed(0)
    scores = torch.tensor([[1.0, 1.0, 1.0, 0.0]]).repeat(3000, 1)
    order = rank_llms(scores, "random", generator=g)
    first = torch.bincount(order[:, 0], minlength=4).float() / 3000
    assert first[3] == 0 and torch.allclose(first[:3], torch.full((3,), 1 / 3), atol=0.03)
    assert (order[:, 3] == 3).all()
    with pytest.raises(ValueError, match="tie_break"):
        rank_llms(scores, "alphabetical")


def test_sample_llm_loss_positive_follows_the_tie_break():
    # LLMs 0 and 1 are tied correct (0 is dearer), LLM 2 wrong; top_k=1, last_k=1 -> negative LLM 2.
    # Positive LLM 0 (pool order): -log(e^0 / (e^0 + e^0)) = ln 2.
    # Positive LLM 1 (cheapest):   -log(e^ln3 / (3 + 1)) = ln(4/3).
    logits = torch.tensor([[0.0, math.log(3.0), 0.0]])
    scores = torch.tensor([[1.0, 1.0, 0.0]])
    costs = torch.tensor([2.0, 1.0, 0.5])
    assert sample_llm_contrastive_loss(logits, scores, 1, 1, tie_break="pool_order").item() == pytest.approx(LN2)
    assert sample_llm_contrastive_loss(logits, scores, 1, 1, tie_break="cheapest", costs=costs).item() \
        == pytest.approx(math.log(4 / 3))
