"""Classifier router (the "DistilBERT router"): encoder + classification head over categories,
softmax confidence, and a fallback LLM when the router is unsure.

    python -m router_lab.train model=classifier                       # default run
    python -m router_lab.train model=classifier encoder=distilbert_base encoder.frozen=false \
        model.confidence_threshold=0.6 model.fallback_llm=generalist-70b

Categories are the data's labels (e.g. CLINC150 domains) or, for score data, the best LLM
of each training query (then category == LLM). ``category_to_llm`` maps a category to the
LLM that serves it; unmapped categories and low-confidence queries go to ``fallback_llm``
(default: the best single LLM on the training data). ``fallback`` flags only the
low-confidence (out-of-scope) queries. On label-only data (CLINC150) the pool is usually
empty: the router predicts categories, and the serving policy maps them to LLMs
(``category_map`` / ``default_llm``, docs/routing.md).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from router_lab.models.common import (
    RouterModule,
    build_query_encoder,
    embed_batch,
    llm_index,
    mlp,
)
from router_lab.policy import label_decision


class ClassifierRouter(RouterModule):
    def __init__(
        self,
        data_info: Mapping[str, Any],
        encoder: Mapping[str, Any],
        hidden_dim: int = 256,
        dropout: float = 0.1,
        lr: float = 3e-5,
        head_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        label_smoothing: float = 0.0,
        category_to_llm: Mapping[str, str] | None = None,
        confidence_threshold: float = 0.0,
        fallback_llm: str | None = None,
        soft_target_temperature: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters()
        info = self.init_pool(data_info)
        self.categories: list[str] = list(info["categories"])
        self.encoder = build_query_encoder(encoder)
        dim = self.encoder.dim if self.encoder is not None else int(info["embedding_dim"])
        self.head = mlp(dim, hidden_dim, len(self.categories), dropout)
        self.loss_fn = nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=label_smoothing)

        # category -> LLM index; -1 = no LLM (label-only data without a mapping).
        mapping = dict(category_to_llm or {})
        if info.get("label_kind") == "best_llm":
            mapping = {c: c for c in self.categories} | mapping
        for cat in mapping:
            if cat not in self.categories:
                raise ValueError(f"model.category_to_llm names category {cat!r}; the categories are {self.categories}")
        if fallback_llm is None and self.llm_names:
            means = info.get("train_mean_scores") or []
            fallback_llm = self.llm_names[int(torch.tensor(means).argmax())] if means else self.llm_names[0]
        self.fallback_index = llm_index(self.llm_names, fallback_llm, "model.fallback_llm") if fallback_llm else -1
        # Unmapped categories are served by the fallback LLM (-1: none, label-only data).
        cat_llm = [llm_index(self.llm_names, mapping[c], f"model.category_to_llm[{c}]") if c in mapping
                   else self.fallback_index for c in self.categories]
        self.register_buffer("category_llm", torch.tensor(cat_llm, dtype=torch.long), persistent=False)
        self.confidence_threshold = float(confidence_threshold)
        # Score data only: train against softmax(score / T) over LLMs instead of the single
        # argmax, so near-ties and noisy scores don't become hard, arbitrary labels.
        self.soft_targets = soft_target_temperature > 0 and info.get("label_kind") == "best_llm"

    # ------------------------------------------------------------------ routing
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Category logits (B, C)."""
        return self.head(embed_batch(self.encoder, batch))

    def decide(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The routing decision for a batch: ``llm`` (B,), ``utilities`` (B, L),
        ``confidence`` (B,), ``fallback`` (B,), plus ``category``/``probs``."""
        return self._decide(self(batch))

    def _decide(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        # The same rule the routing API applies; utilities: the probability mass of the
        # categories each LLM serves.
        probs = logits.softmax(-1)
        return {"probs": probs, **label_decision(probs, self.category_llm, self.confidence_threshold,
                                                 self.fallback_index, len(self.llm_names))}

    # ------------------------------------------------------------------ training
    def training_step(self, batch, batch_idx):
        logits = self(batch)
        if self.soft_targets:
            eff = torch.where(batch["is_probability"][:, None], (batch["scores"] > 0).float(), batch["scores"])
            eff = eff.masked_fill(~batch["score_mask"], float("-inf"))
            target = (eff / self.hparams.soft_target_temperature).softmax(-1)
            loss = -(target * logits.log_softmax(-1)).sum(-1).mean()
        else:
            loss = self.loss_fn(logits, batch["label"])
        self.log("train/loss", loss, prog_bar=True, batch_size=logits.size(0))
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        self.record_validation(batch, self._decide(logits))
        if (batch["label"] >= 0).any():
            self.log("val/loss", self.loss_fn(logits, batch["label"]), batch_size=logits.size(0))
