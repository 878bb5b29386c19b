"""Router training losses: torch tensors in, a differentiable scalar tensor out.

    from router_lab.losses import sample_llm_contrastive_loss, cluster_contrastive_loss, bpr_loss
    python -m pytest tests/test_losses.py -q

The two contrastive losses follow RouterDC (Chen et al., 2024); ``bpr_loss`` and
``bce_pointwise_loss`` train routers on pairwise preferences and pointwise scores.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TIE_MODES = ("skip", "half")


TIE_BREAKS = ("pool_order", "random", "cheapest")


def rank_llms(
    scores: Tensor,
    tie_break: str = "random",
    costs: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, L) LLM indices per row, best score first; equal scores ordered by ``tie_break``:

    - ``"pool_order"``: the pool's order (the RouterDC reference: a stable sort; with 0/1
      scores the LLMs listed first become the positives of almost every query);
    - ``"random"``: a fresh uniform order per row and call, so over training every tied LLM
      is a positive equally often;
    - ``"cheapest"``: cheaper first (``costs`` (B, L) or (L,) needed), equal costs at random.
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break={tie_break!r}; expected one of {list(TIE_BREAKS)}")
    if tie_break == "pool_order":
        return scores.sort(dim=-1, descending=True, stable=True)[1]
    # A lexicographic sort by stable sorts, least significant key first: random, cost, score.
    noise = torch.rand(scores.shape, generator=generator, device="cpu" if generator is not None else scores.device)
    order = noise.to(scores.device).argsort(dim=-1)
    if tie_break == "cheapest":
        if costs is None:
            raise ValueError("tie_break='cheapest' needs costs")
        c = torch.as_tensor(costs, dtype=scores.dtype, device=scores.device).expand_as(scores)
        order = order.gather(1, c.gather(1, order).sort(dim=-1, stable=True)[1])
    return order.gather(1, scores.gather(1, order).sort(dim=-1, descending=True, stable=True)[1])


def sample_llm_contrastive_loss(
    logits: Tensor,
    scores: Tensor,
    top_k: int = 3,
    last_k: int = 3,
    neg_score_max: float = 0.5,
    tie_break: str = "pool_order",
    costs: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """RouterDC's sample-LLM loss: pull each query towards its top_k LLMs, away from its last_k
    LLMs. Which of several equally-scored LLMs count as positives: ``tie_break`` (see
    :func:`rank_llms`; ``"pool_order"`` reproduces the paper)."""
    num_llms = logits.shape[-1]
    if top_k > num_llms or last_k > num_llms or top_k + last_k > num_llms:
        raise ValueError(
            f"top_k + last_k = {top_k + last_k} exceeds the pool of {num_llms} LLMs "
            f"(top_k={top_k}, last_k={last_k})"
        )
    # Negatives are the tail of the same ordering as positives (the reference takes
    # topk(largest=False), which selects the same scores) so that among tied scores a
    # positive is never also drawn as a negative.
    order = rank_llms(scores, tie_break, costs, generator)
    sorted_scores = scores.gather(1, order)
    negative_index = order[:, num_llms - last_k :]
    negative_scores = sorted_scores[:, num_llms - last_k :]
    # A "negative" that still answers well is no negative; -inf drops it from the softmax.
    negative_logits = logits.gather(1, negative_index).masked_fill(negative_scores > neg_score_max, float("-inf"))
    loss = logits.new_zeros(())
    for i in range(top_k):
        positive_logit = logits.gather(1, order[:, i : i + 1])
        log_prob = torch.log_softmax(torch.cat([positive_logit, negative_logits], dim=-1), dim=-1)[:, 0]
        # A positive that failed (score 0) teaches nothing; its row counts as 0 in the batch mean.
        term = torch.where(sorted_scores[:, i] > 0, -log_prob, torch.zeros_like(log_prob))
        loss = loss + term.mean()
    return loss


def sample_sample_contrastive_loss(
    embeddings: Tensor,
    group_ids: Tensor,
    num_negatives: int = 3,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """InfoNCE over query embeddings: one random same-group positive vs. num_negatives other-group negatives."""
    group_ids = torch.as_tensor(group_ids, device=embeddings.device)
    unit = F.normalize(embeddings, dim=-1)
    similarity = unit @ unit.T
    known = group_ids >= 0
    positives, negatives, anchors = [], [], []
    for i in range(embeddings.shape[0]):
        if not known[i]:
            continue
        # Unknown-group rows (-1) are neither positives nor negatives: they may share i's group.
        same = torch.nonzero(known & (group_ids == group_ids[i])).flatten()
        other = torch.nonzero(known & (group_ids != group_ids[i])).flatten()
        if other.numel() < num_negatives:
            continue
        # i itself is a candidate positive, as in RouterDC, so singleton groups still contribute.
        pick = torch.randint(same.numel(), (1,), generator=generator).item()
        shuffle = torch.randperm(other.numel(), generator=generator)[:num_negatives]
        anchors.append(i)
        positives.append(same[pick])
        negatives.append(other[shuffle.to(other.device)])
    if not anchors:
        return embeddings.sum() * 0
    anchor_index = torch.tensor(anchors, device=embeddings.device)
    candidate_index = torch.cat([torch.stack(positives)[:, None], torch.stack(negatives)], dim=1)
    candidate_sims = similarity[anchor_index[:, None], candidate_index] / temperature
    return -torch.log_softmax(candidate_sims, dim=-1)[:, 0].mean()


def cluster_contrastive_loss(
    embeddings: Tensor,
    cluster_ids: Tensor,
    H: int = 3,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """RouterDC's sample-sample loss with groups = unsupervised query clusters and H negatives."""
    return sample_sample_contrastive_loss(embeddings, cluster_ids, H, temperature, generator)


def task_contrastive_loss(
    embeddings: Tensor,
    task_ids: Tensor,
    H: int = 3,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sample-sample loss with groups = the benchmark/task each query comes from and H negatives."""
    return sample_sample_contrastive_loss(embeddings, task_ids, H, temperature, generator)


def bpr_loss(
    score_preferred: Tensor,
    score_other: Tensor,
    margin: float = 1.0,
    is_tie: Tensor | None = None,
    tie_mode: str = "skip",
) -> Tensor:
    """Bayesian Personalised Ranking with a margin: mean of -log sigmoid(s_pref - s_other - margin).

    ``margin`` is in score units: the loss keeps pushing until the preferred LLM's score beats
    the other's by well over ``margin`` (at a gap of exactly ``margin`` a pair costs log 2).
    Ties: ``"skip"`` drops them; ``"half"`` counts each as half a win each way,
    0.5*(-log sigmoid(d - margin)) + 0.5*(-log sigmoid(-d - margin)), which is smallest at d = 0.
    """
    if tie_mode not in TIE_MODES:
        raise ValueError(f"tie_mode={tie_mode!r}; expected one of {list(TIE_MODES)}")
    gap = score_preferred - score_other
    # softplus(-x) is -log sigmoid(x) without underflow for large negative x.
    win_loss = F.softplus(margin - gap)
    if is_tie is None:
        is_tie = torch.zeros_like(gap, dtype=torch.bool)
    is_tie = is_tie.to(torch.bool)
    if tie_mode == "skip":
        per_pair = win_loss[~is_tie]
    else:
        tie_loss = 0.5 * F.softplus(margin - gap) + 0.5 * F.softplus(margin + gap)
        per_pair = torch.where(is_tie, tie_loss, win_loss)
    if per_pair.numel() == 0:
        return gap.sum() * 0
    return per_pair.mean()


def bce_pointwise_loss(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """Binary cross-entropy with logits against targets in [0, 1], mean over kept entries.

    Kept entries are those where ``mask`` is True (all if None) and the target is not NaN.
    """
    kept = ~torch.isnan(targets)
    if mask is not None:
        kept = kept & mask.to(torch.bool)
    # NaN targets must not enter the BCE at all: 0 * NaN in backward would poison the gradient.
    safe_targets = torch.where(kept, targets, torch.zeros_like(targets))
    per_entry = F.binary_cross_entropy_with_logits(logits, safe_targets, reduction="none")
    if not kept.any():
        return logits.sum() * 0
    return per_entry[kept].mean()
