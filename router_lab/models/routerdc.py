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
from router_lab.evaluation import OutputCollector
from router_lab.losses import (
    TIE_BREAKS,
    cluster_contrastive_loss,
    sample_llm_contrastive_loss,
    task_contrastive_loss,
)
from router_lab.models.common import (
    RouterModule,
    effective_batch_scores,
    adamw_with_warmup,
    build_query_encoder,
    embed_batch,
    mlp,
    total_training_steps,
)
from router_lab.policy import choose_llm, fit_platt

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
        info = dict(data_info)
        self.llm_names: list[str] = list(info["llm_names"])
        self.llm_costs = [float(c) for c in info.get("llm_costs") or [0.0] * len(self.llm_names)]
        self.data_info = info
        if similarity not in SIMILARITIES:
            raise UserError(f"model.similarity={similarity!r}; expected one of {list(SIMILARITIES)}")
        if tie_break not in TIE_BREAKS:
            raise UserError(f"model.tie_break={tie_break!r}; expected one of {list(TIE_BREAKS)}")
        if lr_schedule not in LR_SCHEDULES:
            raise UserError(f"model.lr_schedule={lr_schedule!r}; expected one of {list(LR_SCHEDULES)}")
        self.encoder = build_query_encoder(encoder)
        dim = self.encoder.dim if self.encoder is not None else int(info["embedding_dim"])
        self.projection = mlp(dim, projection_hidden_dim, projection_dim, dropout) if projection_dim > 0 else None
        out_dim = projection_dim if projection_dim > 0 else dim
        self.llm_embeddings = nn.Embedding(len(self.llm_names), out_dim)
        nn.init.normal_(self.llm_embeddings.weight, mean=0.0, std=llm_embedding_std)
        # Per-LLM Platt calibration of the preference share into a quality estimate (utility
        # contract): quality_j = sigmoid(a_j * log share_j + b_j), fitted on each validation epoch.
        self.register_buffer("calib_a", torch.ones(len(self.llm_names)))
        self.register_buffer("calib_b", torch.zeros(len(self.llm_names)))
        self.register_buffer("calib_fitted", torch.zeros((), dtype=torch.bool))
        self._val = OutputCollector()
        self._val_batches: list[tuple[dict, torch.Tensor]] = []
        self.test_outputs: dict[int, OutputCollector] = {}

    def setup(self, stage: str | None = None) -> None:
        # Checked here rather than in __init__: errors raised inside hydra.instantiate come
        # out wrapped, and these must reach the user as one line.
        hp, n = self.hparams, len(self.llm_names)
        if stage in (None, "fit"):
            if hp.top_k + hp.last_k > n:
                raise UserError(f"model.top_k + model.last_k = {hp.top_k} + {hp.last_k} exceeds the pool of {n} LLMs "
                                f"{self.llm_names}; expected at most {n}")
            if not self.data_info.get("has_scores", True):
                raise UserError("data.train: RouterDC needs per-LLM scores on every training record; found none")
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
        quality = self.quality(logits)
        lam = self.hparams.cost_lambda if cost_lambda is None else cost_lambda
        costs = batch.get("costs")
        llm = choose_llm(quality, self.llm_costs if costs is None else costs, lam, default=quality.argmax(-1))
        confidence = quality.gather(1, llm[:, None]).squeeze(1)
        return {"llm": llm, "utilities": quality, "confidence": confidence, "logits": logits,
                "fallback": torch.zeros_like(llm, dtype=torch.bool)}

    def quality(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, L) the utilities: the softmax share of each LLM, calibrated per LLM into an
        estimate of its score once ``calib_*`` are fitted (``calibrate``)."""
        share = logits.float().softmax(-1)
        if not bool(self.calib_fitted):
            return share
        return torch.sigmoid(self.calib_a * share.clamp_min(1e-12).log() + self.calib_b)

    @torch.no_grad()
    def fit_calibration(self, logits: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> None:
        """Fit ``calib_*`` on held-out rows: ``policy.fit_platt`` of the log share against the
        effective score."""
        a, b = fit_platt(logits.float().log_softmax(-1), scores, mask)
        self.calib_a.copy_(a)
        self.calib_b.copy_(b)
        self.calib_fitted.fill_(True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints/exports from before calibration: uncalibrated (the softmax share).
        for name in ("calib_a", "calib_b", "calib_fitted"):
            state_dict.setdefault(prefix + name, getattr(self, name).clone() if name != "calib_fitted"
                                  else torch.zeros((), dtype=torch.bool))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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

    def _collect(self, collector: OutputCollector, batch) -> None:
        d = self._decide(self(batch)[0], batch)
        collector.add(batch, d["utilities"], d["llm"], d["confidence"], None, d["fallback"])

    def validation_step(self, batch, batch_idx):
        if not self.hparams.calibrate:
            return self._collect(self._val, batch)
        keep = {k: v.detach() for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "embedding"}
        self._val_batches.append((keep, self(batch)[0].detach()))

    def on_validation_epoch_end(self):
        if self.hparams.calibrate and self._val_batches:
            # Fit the calibration on this epoch's validation outputs, then decide with it, so the
            # metrics (and the checkpoint, which carries the buffers) match these weights.
            batches, logits = zip(*self._val_batches)
            self._val_batches = []
            eff = effective_batch_scores({k: torch.cat([b[k] for b in batches]) for k in ("scores", "is_probability")})
            self.fit_calibration(torch.cat(logits), eff, torch.cat([b["score_mask"] for b in batches]))
            for b, lg in zip(batches, logits):
                d = self._decide(lg, b)
                self._val.add(b, d["utilities"], d["llm"], d["confidence"], None, d["fallback"])
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
