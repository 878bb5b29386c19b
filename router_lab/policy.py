"""The routing policy: a family's utilities + costs + willingness to pay / threshold / fallback
-> the LLM each query goes to. Every caller (the families' ``decide``, ``api.Router``,
``calibrate``, ``metrics``/``cost_quality`` sweeps) uses these functions; nothing else
writes the rule.

    from router_lab.policy import choose_llm, apply_fallback, lambda_grid
    llm = choose_llm(utilities, costs, cost_lambda=50.0)           # argmax 50 * utility - cost
    llm, fallback = apply_fallback(llm, confidence, 0.6, fallback_index=3)

The utility contract (what a family's ``decide(batch)["utilities"]`` must return):

- shape ``(B, L)``, one value per LLM of the pool, in the pool's order;
- **scale**: in ``[0, 1]``, the router's estimate of how good each LLM's answer to this query
  is, on the scale of the data's scores (``acc_predict`` units): RouterDC the softmax over
  LLMs of its similarities, the classifier the probability mass of the categories an LLM
  serves, RankRouter ``sigmoid`` of its scores. They need not be calibrated, but a fixed
  gain in utility must be worth the same everywhere, because
- **higher is better**, and a willingness to pay ``lambda`` (cost units per unit of utility)
  routes to ``argmax_llm lambda * utility - cost``: ``lambda = 0`` always takes the cheapest
  LLM, ``lambda = inf`` (or None) the router's own best-utility choice.

Inputs may be torch tensors or numpy arrays (the output is of the same kind).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

#: The one lambda grid, in multiples of the pool's mean cost: 0, a log grid, inf.
GRID_DECADES = (-3.0, 6.0)
GRID_POINTS_PER_DECADE = 20


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _argmax(x):
    return x.argmax(-1) if _is_torch(x) else np.argmax(x, axis=-1)


def choose_llm(utilities, costs=None, cost_lambda: float | None = None, default=None):
    """(B,) the LLM index per row: ``argmax lambda * utility - cost`` (costs ``(B, L)`` per row
    or ``(L,)`` per LLM). Without a finite ``cost_lambda`` (None / inf) or without costs: the
    family's own choice ``default`` if given, else ``argmax utility``."""
    if cost_lambda is None or math.isinf(float(cost_lambda)) or costs is None:
        return default if default is not None else _argmax(utilities)
    if float(cost_lambda) < 0:
        raise ValueError(f"cost_lambda={cost_lambda}; expected a willingness to pay >= 0 (or None/inf)")
    if _is_torch(utilities):
        import torch

        u = utilities if utilities.is_floating_point() else utilities.float()
        c = torch.as_tensor(costs, device=u.device, dtype=u.dtype)
        return (float(cost_lambda) * u - c).argmax(-1)
    util = np.asarray(utilities, dtype=float)
    return np.argmax(float(cost_lambda) * util - np.asarray(costs, dtype=float), axis=-1)


def apply_fallback(llm, confidence, threshold: float | None, fallback_index: int | None, fallback=None):
    """(llm, fallback): rows whose ``confidence`` is below ``threshold`` go to
    ``fallback_index`` and are flagged (``fallback`` ORs earlier flags in). A negative
    ``fallback_index`` means "no LLM": low rows are flagged (out of scope) and get ``-1``.
    No threshold or no fallback at all (None): unchanged."""
    if _is_torch(llm):
        import torch

        fb = torch.zeros_like(llm, dtype=torch.bool) if fallback is None else fallback.bool()
        if threshold is None or fallback_index is None:
            return llm, fb
        low = confidence < float(threshold)
        return torch.where(low, torch.full_like(llm, max(int(fallback_index), -1)), llm), fb | low
    llm = np.asarray(llm)
    fb = np.zeros(llm.shape, bool) if fallback is None else np.asarray(fallback, bool)
    if threshold is None or fallback_index is None:
        return llm, fb
    low = np.asarray(confidence) < float(threshold)
    return np.where(low, max(int(fallback_index), -1), llm), fb | low


def label_decision(probs, category_llm, threshold: float | None = None, fallback_index: int = -1,
                   n_llms: int = 0) -> dict:
    """A category (label) router's decision from its category probabilities ``probs`` (B, C)
    (torch): ``category`` (B,) the most probable one, ``confidence`` (B,) its probability,
    ``llm`` (B,) ``category_llm[category]`` (-1: no LLM), ``fallback`` (B,) confidence below
    ``threshold`` (out of scope; then ``llm = fallback_index``, -1 for none: see
    :func:`apply_fallback`), and ``utilities`` (B, n_llms): the probability mass of the
    categories each LLM serves (the utility contract above)."""
    import torch

    confidence, category = probs.max(-1)
    category_llm = torch.as_tensor(category_llm).to(probs.device)
    llm, fallback = apply_fallback(category_llm[category], confidence, threshold, fallback_index)
    util = torch.zeros(probs.size(0), n_llms, device=probs.device, dtype=probs.dtype)
    served = category_llm >= 0
    if n_llms and served.any():
        util.index_add_(1, category_llm[served], probs[:, served])
    return {"category": category, "confidence": confidence, "llm": llm, "fallback": fallback, "utilities": util}


def decide(utilities, costs=None, cost_lambda: float | None = None, default=None, confidence=None,
           threshold: float | None = None, fallback_index: int | None = None):
    """``choose_llm`` then ``apply_fallback``: (llm, fallback). A finite ``cost_lambda`` is the
    user's explicit trade-off, so it replaces the family's own choice and its fallback flags."""
    llm = choose_llm(utilities, costs, cost_lambda, default)
    return apply_fallback(llm, confidence, threshold, fallback_index)


def lambda_grid(costs: Sequence[float] | np.ndarray, points_per_decade: int = GRID_POINTS_PER_DECADE) -> list[float]:
    """The one grid of willingness-to-pay values every sweep uses: 0 (always the cheapest),
    ``mean_cost * 10**k`` for k from -3 to 6 (``points_per_decade`` per decade), then inf
    (the router's own choice). ``costs``: per-LLM costs ``(L,)`` or per-row ``(N, L)``.
    With utilities in [0, 1] this runs from 'cost decides' to 'quality decides'."""
    c = np.asarray(costs, dtype=float)
    per_llm = np.nanmean(c, axis=0) if c.ndim == 2 else c
    positive = per_llm[np.isfinite(per_llm) & (per_llm > 0)]
    scale = float(positive.mean()) if positive.size else 1.0
    lo, hi = GRID_DECADES
    n = int(round((hi - lo) * points_per_decade)) + 1
    return [0.0, *(scale * np.logspace(lo, hi, n)).tolist(), math.inf]


def fit_platt(features, targets, mask=None, l2: float = 1e-3):
    """Per-LLM Platt scaling: (a, b), each (L,), with ``sigmoid(a_j * features_j + b_j)`` fitted
    to ``targets`` (B, L) in [0, 1] by cross-entropy over the rows ``mask`` keeps (and that are
    not NaN). ``a_j >= 0`` keeps the calibrated utility monotone in the router's own score; a
    small L2 on ``a_j`` keeps an LLM the features separate perfectly finite. A family uses it to
    turn its raw scores into utilities that honour the contract (a score estimate), fitted on
    held-out rows."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(features).detach().float()
    y = torch.as_tensor(targets).detach().float()
    m = ~torch.isnan(y) if mask is None else torch.as_tensor(mask).bool() & ~torch.isnan(y)
    y = torch.nan_to_num(y).clamp(0, 1)
    alpha = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(x.shape[1], requires_grad=True)
    if not m.any():
        return F.softplus(alpha.detach()), b.detach()
    opt = torch.optim.LBFGS([alpha, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        with torch.enable_grad():
            a = F.softplus(alpha)
            loss = F.binary_cross_entropy_with_logits((a * x + b)[m], y[m]) + l2 * (a ** 2).mean()
            loss.backward()
        return loss

    opt.step(closure)
    return F.softplus(alpha.detach()), b.detach()
