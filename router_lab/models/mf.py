"""Matrix-factorisation router: RouteLLM's MF router (Ong et al., 2024) generalised from a
strong/weak pair to N LLMs. A query embedding is projected to ``dim`` and multiplied
element-wise with a learned, L2-normalised embedding of each LLM; a shared linear map (plus
an optional per-LLM bias) turns each product into that LLM's predicted score logit:

    logit(q, m) = w . (normalize(v_m) * W q) + b_m        utility = sigmoid(logit)

    python -m router_lab.train model=mf                                   # synthetic benchmark
    python -m router_lab.train model=mf data=split2 data.val=null         # split2, held-out validation
    python -m router_lab.train model=mf model.loss=pairwise               # RouteLLM's Bradley-Terry loss

Pointwise by default (``loss: pointwise``): binary cross-entropy of every scored LLM's logit
against its effective score (probability rows binarised at > 0, as acc_predict counts them).
Why: RouteLLM's data are arena battles (one preference per query), so it must train on pairs;
routing records here score every LLM of the pool on the same query, and the pointwise loss
uses each of those N labels directly (pairs of 0/1 correctness are mostly ties, which a
pairwise loss throws away), and it yields calibrated per-LLM quality estimates in [0, 1] --
what ``cost_lambda * quality - cost`` needs; pairwise logits are only defined up to a
per-query shift. ``loss: pairwise`` is RouteLLM's objective for comparison:
``-log sigmoid(logit_i - logit_j)`` over every scored pair with ``s_i > s_j`` (ties skipped).

Every LLM of the pool needs training scores (its embedding is learned from them): an LLM with
none is one error line. Trained with the common AdamW + warm-up (``lr`` for a fine-tuned
encoder, ``head_lr`` for the factorisation); frozen encoders use the embedding cache.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from router_lab.errors import UserError
from router_lab.models.common import RouterModule, check_choice, build_query_encoder, embed_batch, mlp
from router_lab.models.common import effective_batch_scores

LOSSES = ("pointwise", "pairwise")


def pairwise_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean ``-log sigmoid(logit_i - logit_j)`` over pairs of scored LLMs with target_i >
    target_j (RouteLLM's Bradley-Terry objective on every ordered pair); 0 without pairs."""
    better = (targets[:, :, None] > targets[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    if not better.any():
        return logits.sum() * 0.0
    diff = logits[:, :, None] - logits[:, None, :]
    return F.softplus(-diff[better]).mean()


def pointwise_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of each scored LLM's logit against its score in [0, 1]."""
    if not mask.any():
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[mask], targets[mask].clamp(0, 1))


class MFRouter(RouterModule):
    def __init__(
        self,
        data_info: Mapping[str, Any],
        encoder: Mapping[str, Any],
        dim: int = 128,
        projection_hidden_dim: int = 0,
        dropout: float = 0.1,
        llm_bias: bool = True,
        loss: str = "pointwise",
        lr: float = 3e-5,
        head_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.0,
        cost_lambda: float | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        info = self.init_pool(data_info)
        check_choice("loss", loss, LOSSES)
        if int(dim) < 1:
            raise UserError(f"model.dim={dim}; expected a positive factor dimension")
        self.encoder = build_query_encoder(encoder)
        in_dim = self.encoder.dim if self.encoder is not None else int(info["embedding_dim"])
        n = len(self.llm_names)
        self.query_projection = mlp(in_dim, projection_hidden_dim, dim, dropout)
        self.llm_embeddings = nn.Embedding(n, dim)
        self.classifier = nn.Linear(dim, 1, bias=False)
        self.bias = nn.Parameter(torch.zeros(n)) if llm_bias else None
        if self.bias is not None:  # start from each LLM's training mean (logit), the best constant predictor
            means = [m if np.isfinite(m) else 0.5 for m in info.get("train_mean_scores") or [0.5] * n]
            p = torch.tensor(means, dtype=torch.float).clamp(0.02, 0.98)
            with torch.no_grad():
                self.bias.copy_(torch.log(p / (1 - p)))

    def setup(self, stage: str | None = None) -> None:
        # Here rather than in __init__: errors inside hydra.instantiate come out wrapped.
        dm = self.fit_datamodule(stage, "the MF router")
        if stage not in (None, "fit"):
            return
        train = getattr(dm, "train_set", None)
        if train is not None and train.scores.ndim == 2 and train.scores.shape[1] == len(self.llm_names):
            unscored = np.isnan(train.scores).all(axis=0)
        else:
            unscored = ~np.isfinite(np.asarray(self.data_info.get("train_mean_scores") or [0.0] * len(self.llm_names),
                                               dtype=float))
        missing = [n for n, u in zip(self.llm_names, unscored) if u]
        if missing:
            raise UserError(f"data.train: no training record scores {missing}; model=mf learns each LLM's embedding "
                            "from its training scores, so every pool LLM needs some (add data for it or drop it "
                            "from llm_pool)")
        if self.hparams.loss == "pointwise" and train is not None and train.has_scores:
            eff = train.effective_scores()
            lo, hi = float(np.nanmin(eff)), float(np.nanmax(eff))
            if lo < 0 or hi > 1:
                raise UserError(f"data.train: scores range over [{lo:g}, {hi:g}]; model.loss=pointwise needs scores "
                                "in [0, 1] (rescale them, or set model.loss=pairwise)")

    # ------------------------------------------------------------------ routing
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, L) score logits: w . (normalize(v_m) * W q) (+ b_m)."""
        q = self.query_projection(embed_batch(self.encoder, batch))
        v = F.normalize(self.llm_embeddings.weight, dim=-1)
        logits = self.classifier(q[:, None, :] * v[None, :, :]).squeeze(-1)
        return logits + self.bias if self.bias is not None else logits

    def decide(self, batch: Mapping[str, torch.Tensor], cost_lambda: float | None = None) -> dict[str, torch.Tensor]:
        """``llm`` (B,), ``utilities`` (B, L) = sigmoid of the logits (predicted scores;
        calibrated with the pointwise loss), ``confidence`` = the chosen LLM's utility."""
        logits = self(batch)
        return self.utility_decision(logits.float().sigmoid(), batch, cost_lambda, logits=logits)

    # ------------------------------------------------------------------ training
    def loss(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        fn = pointwise_loss if self.hparams.loss == "pointwise" else pairwise_loss
        return fn(self(batch), effective_batch_scores(batch), batch["score_mask"].bool())

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["scores"].size(0))
        return loss
