"""Pieces every router family shares, as plain functions (no base class)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from router_lab.encoders import EncoderSpec, QueryEncoder
from router_lab.evaluation import OutputCollector
from router_lab.pool import PoolError


def build_query_encoder(encoder: Mapping[str, Any]) -> QueryEncoder | None:
    """The trainable backbone in fine-tune mode; None when frozen (batches carry cached
    embeddings)."""
    spec = EncoderSpec.from_config(encoder)
    return None if spec.frozen else QueryEncoder(spec)


def embed_batch(encoder: QueryEncoder | None, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(B, D) query embeddings: cached ones, or a forward pass of the backbone."""
    if "embedding" in batch:
        return batch["embedding"]
    if encoder is None:
        raise RuntimeError("batch has no cached 'embedding' and the router has no encoder (frozen mode)")
    return encoder(batch["input_ids"], batch["attention_mask"])


def adamw_with_warmup(module: nn.Module, encoder: nn.Module | None, lr: float, head_lr: float,
                      weight_decay: float, warmup_ratio: float, total_steps: int):
    """AdamW (encoder at ``lr``, everything else at ``head_lr``; no decay on biases and
    norms) with linear warm-up then linear decay to 0, stepped every batch."""
    enc_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups: dict[tuple, list] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim > 1 and "norm" not in name.lower()
        key = (id(p) in enc_ids, decay)
        groups.setdefault(key, []).append(p)
    param_groups = [
        {"params": ps, "lr": lr if is_enc else head_lr, "weight_decay": weight_decay if decay else 0.0}
        for (is_enc, decay), ps in groups.items()
    ]
    opt = torch.optim.AdamW(param_groups)
    total = max(1, int(total_steps))
    warmup = int(warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def llm_index(names: list[str], name: str, what: str) -> int:
    if name not in names:
        raise PoolError(f"{what}: unknown LLM {name!r}; the pool is {names}")
    return names.index(name)


def mlp(in_dim: int, hidden_dim: int, out_dim: int, dropout: float) -> nn.Module:
    if hidden_dim <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, out_dim))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden_dim, out_dim))


def total_training_steps(trainer) -> int:
    try:
        return int(trainer.estimated_stepping_batches)
    except Exception:  # not attached (e.g. a unit test building the optimiser directly)
        return 1000


def log_validation_metrics(module, collector, extra: Mapping[str, float] | None = None,
                           score_metric: str | None = None) -> dict:
    """Routing metrics of an epoch's validation outputs, logged as ``val/<metric>``, plus
    ``val/score`` (what checkpointing and early stopping monitor): ``score_metric`` when
    given and present, else the data's headline metric. Resets the collector."""
    from router_lab.evaluation import routing_metrics, selection_score

    m = routing_metrics(collector.result()) if collector.parts else {}
    collector.reset()
    m.update(extra or {})
    for k, v in m.items():
        module.log(f"val/{k}", v)
    score = m[score_metric] if score_metric and score_metric in m else selection_score(m)
    module.log("val/score", score, prog_bar=True)
    return m


class RouterModule(L.LightningModule):
    """What every router family shares. A family sets ``self._val = OutputCollector()`` and
    implements ``decide(batch)``, ``_collect(collector, batch)`` (decide and add to the
    collector) and ``training_step``; this class collects test outputs per test dataloader
    in ``test_outputs`` (read by router_lab.train), logs the validation routing metrics at
    each epoch end, and builds AdamW with warm-up and linear decay from the hparams ``lr``
    (encoder), ``head_lr``, ``weight_decay`` and ``warmup_ratio``."""

    def on_validation_epoch_end(self):
        log_validation_metrics(self, self._val)

    def on_test_epoch_start(self):
        self.test_outputs: dict[int, OutputCollector] = {}

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        self._collect(self.test_outputs.setdefault(dataloader_idx, OutputCollector()), batch)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_with_warmup(self, self.encoder, hp.lr, hp.head_lr, hp.weight_decay, hp.warmup_ratio,
                                 total_training_steps(self.trainer))


def effective_batch_scores(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(B, L) the score a user gets (``metrics.effective_scores``): probability rows binarised
    at > 0, multi_attempt rows raw; 0 where unscored (see ``score_mask``)."""
    scores = batch["scores"].float()
    prob = batch.get("is_probability")
    if prob is None:
        return scores
    return torch.where(prob.to(scores.device)[:, None].bool(), (scores > 0).float(), scores)
