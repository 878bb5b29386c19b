"""RouterDC (Chen et al., NeurIPS 2024): a query encoder and one trainable embedding per
LLM; a query goes to the LLM whose embedding is most similar to it. Trained with the dual
contrastive losses of ``router_lab.losses`` (sample-LLM, plus sample-sample over clusters
and/or tasks).

    python -m router_lab.train +experiment=routerdc_split2                   # the paper (mDeBERTa)
    python -m router_lab.train +experiment=routerdc_split2_minilm            # frozen MiniLM on CPU
    python -m router_lab.train +experiment=routerdc_split2 encoder=minilm    # fine-tuned MiniLM

Loss = sample_loss_weight * sample-LLM + cluster_loss_weight * sample-sample(cluster_id)
+ task_loss_weight * sample-sample(task). The reference code's ``--sample_loss_weight``
weighs its task-tag loss, which is ``task_loss_weight`` here; its sample-LLM loss has weight 1.

Frozen encoders: a cached embedding has no trainable query side, so ``projection_dim > 0``
adds an MLP on it (the sample-sample losses then shape the projected space).

Cost-aware routing: training targets are ``score - cost_rate * cost``; with ``cost_lambda``
set, ``decide`` picks argmax over LLMs of ``cost_lambda * quality - cost``. Similarities are
not qualities: ``quality`` is the softmax over LLMs of the logits (similarity / temperature),
i.e. how much of the router's preference each LLM gets, in [0, 1] and summing to 1. It is
monotone in the similarity, so at ``cost_lambda = inf`` routing equals the plain argmax.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from router_lab.errors import UserError
from router_lab.losses import (
    TIE_BREAKS,
    cluster_contrastive_loss,
    sample_llm_contrastive_loss,
    task_contrastive_loss,
)
from router_lab.models.common import (
    RouterModule,
    check_choice,
    adamw_with_warmup,
    build_query_encoder,
    embed_batch,
    mlp,
    total_training_steps,
)

SIMILARITIES = ("cos", "dot")
LR_SCHEDULES = ("constant", "linear")


def llm_similarity(queries: torch.Tensor, llm_embeddings: torch.Tensor, kind: str = "cos") -> torch.Tensor:
    """(B, D) x (L, D) -> (B, L): cosine similarity or dot product."""
    if kind == "cos":
        return F.normalize(queries, dim=-1) @ F.normalize(llm_embeddings, dim=-1).T
    return queries @ llm_embeddings.T


class RouterDC(RouterModule):
    def __init__(
        self,
        data_info: Mapping[str, Any],
        encoder: Mapping[str, Any],
        similarity: str = "cos",
        temperature: float = 1.0,
        llm_embedding_std: float = 0.78,
        projection_dim: int = 0,
        projection_hidden_dim: int = 0,
        dropout: float = 0.0,
        top_k: int = 3,
        last_k: int = 3,
        neg_score_max: float = 0.5,
        sample_loss_weight: float = 1.0,
        cluster_loss_weight: float = 1.0,
        task_loss_weight: float = 0.0,
        H: int = 3,
        sample_temperature: float = 1.0,
        lr: float = 5e-5,
        head_lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.0,
        lr_schedule: str = "constant",
        cost_rate: float = 0.0,
        cost_lambda: float | None = None,
        tie_break: str = "random",
        calibrate: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        info = self.init_pool(data_info)
        check_choice("similarity", similarity, SIMILARITIES)
        check_choice("tie_break", tie_break, TIE_BREAKS)
        check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
        self.encoder = build_query_encoder(encoder)
        dim = self.encoder.dim if self.encoder is not None else int(info["embedding_dim"])
        self.projection = mlp(dim, projection_hidden_dim, projection_dim, dropout) if projection_dim > 0 else None
        out_dim = projection_dim if projection_dim > 0 else dim
        self.llm_embeddings = nn.Embedding(len(self.llm_names), out_dim)
        nn.init.normal_(self.llm_embeddings.weight, mean=0.0, std=llm_embedding_std)
        # Per-LLM Platt calibration of the preference share into a quality estimate (utility
        # contract): quality_j = sigmoid(a_j * log share_j + b_j), fitted on each validation epoch.
        self.register_calibration()

    def setup(self, stage: str | None = None) -> None:
        # Checked here rather than in __init__: errors raised inside hydra.instantiate come
        # out wrapped, and these must reach the user as one line.
        hp, n = self.hparams, len(self.llm_names)
        if stage in (None, "fit"):
            if hp.top_k + hp.last_k > n:
                raise UserError(f"model.top_k + model.last_k = {hp.top_k} + {hp.last_k} exceeds the pool of {n} LLMs "
                                f"{self.llm_names}; expected at most {n}")
            self.fit_datamodule(stage, "RouterDC")
            if hp.cluster_loss_weight > 0 and not self.data_info.get("has_cluster_ids", False):
                raise UserError("data.train: some training records have no 'cluster_id' but model.cluster_loss_weight="
                                f"{hp.cluster_loss_weight}; write files with cluster ids with `python -m router_lab.clusters` "
                                "(or set model.cluster_loss_weight=0)")

    # ------------------------------------------------------------------ routing
    def query_embedding(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, D') the query side of the similarity (after the projection, if any)."""
        q = embed_batch(self.encoder, batch)
        return self.projection(q) if self.projection is not None else q

    def forward(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, L) = similarity / temperature, query embedding (B, D'))."""
        q = self.query_embedding(batch)
        sim = llm_similarity(q, self.llm_embeddings.weight, self.hparams.similarity)
        return sim / self.hparams.temperature, q

    def decide(self, batch: Mapping[str, torch.Tensor], cost_lambda: float | None = None) -> dict[str, torch.Tensor]:
        """``llm`` (B,), ``utilities`` (B, L) = quality estimates (softmax of the logits),
        ``confidence`` (B,), ``fallback`` (B,); ``cost_lambda`` (default: the hparam) trades
        quality for cost: argmax of lambda * quality - cost."""
        return self._decide(self(batch)[0], batch, cost_lambda)

    def _decide(self, logits: torch.Tensor, batch: Mapping[str, torch.Tensor],
                cost_lambda: float | None = None) -> dict[str, torch.Tensor]:
        return self.utility_decision(self.quality(logits), batch, cost_lambda, logits=logits)

    def quality(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, L) the utilities: the softmax share of each LLM, calibrated per LLM into an
        estimate of its score once ``calib_*`` are fitted (``calibrate``)."""
        share = logits.float().softmax(-1)
        if not bool(self.calib_fitted):
            return share
        return torch.sigmoid(self.calib_a * share.clamp_min(1e-12).log() + self.calib_b)

    def fit_calibration(self, logits: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> None:
        """Fit ``calib_*`` on held-out rows: Platt scaling of the log share against the score."""
        self.fit_platt_calibration(logits.float().log_softmax(-1), scores, mask)

    # ------------------------------------------------------------------ training
    def training_targets(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, L) what the sample-LLM loss ranks: score - cost_rate * cost; unscored LLMs
        sink to the bottom."""
        scores = batch["scores"].float()
        if self.hparams.cost_rate and "costs" in batch:
            scores = scores - self.hparams.cost_rate * batch["costs"].float()
        return torch.where(batch["score_mask"], scores, torch.full_like(scores, -1e9))

    def losses(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        logits, q = self(batch)
        costs = batch.get("costs")
        if hp.tie_break == "cheapest" and costs is None:
            costs = torch.tensor(self.llm_costs, device=logits.device)
        parts = {"sample_llm": sample_llm_contrastive_loss(logits, self.training_targets(batch), hp.top_k, hp.last_k,
                                                           hp.neg_score_max, hp.tie_break, costs)}
        if hp.cluster_loss_weight:
            parts["cluster"] = cluster_contrastive_loss(q, batch["cluster_id"], hp.H, hp.sample_temperature)
        if hp.task_loss_weight:
            parts["task"] = task_contrastive_loss(q, batch["task_id"], hp.H, hp.sample_temperature)
        weights = {"sample_llm": hp.sample_loss_weight, "cluster": hp.cluster_loss_weight, "task": hp.task_loss_weight}
        parts["loss"] = sum(weights[k] * v for k, v in parts.items())
        return parts

    def training_step(self, batch, batch_idx):
        parts = self.losses(batch)
        bs = batch["scores"].size(0)
        for k, v in parts.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=bs)
        return parts["loss"]

    def validation_step(self, batch, batch_idx):
        if not self.hparams.calibrate:
            return super().validation_step(batch, batch_idx)
        self.keep_validation_batch(batch, self(batch)[0])

    def on_validation_epoch_end(self):
        self.calibrate_on_validation(self.fit_calibration, lambda logits, batch: self._decide(logits, batch))
        super().on_validation_epoch_end()

    def configure_optimizers(self):
        hp = self.hparams
        if hp.lr_schedule == "linear":
            return adamw_with_warmup(self, self.encoder, hp.lr, hp.head_lr, hp.weight_decay, hp.warmup_ratio,
                                     total_training_steps(self.trainer))
        # The reference: AdamW at a constant learning rate.
        enc = {id(p) for p in self.encoder.parameters()} if self.encoder is not None else set()
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if id(p) in enc], "lr": hp.lr},
                  {"params": [p for p in params if id(p) not in enc], "lr": hp.head_lr}]
        return torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=hp.weight_decay)
