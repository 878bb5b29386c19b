"""What every router family shares: the ``RouterModule`` base class (the family contract) and
plain functions (encoder, MLP, AdamW with warm-up, the shared ``__init__`` pieces)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
from torch import nn

from router_lab.encoders import EncoderSpec, QueryEncoder
from router_lab import evaluation
from router_lab.errors import UserError
from router_lab.policy import choose_llm, fit_platt
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


def check_choice(name: str, value: Any, allowed) -> None:
    """One error line for a model setting outside its choices."""
    if value not in allowed:
        raise UserError(f"model.{name}={value!r}; expected one of {list(allowed)}")


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


class RouterModule(L.LightningModule, ABC):
    """The contract of a router family. A family implements (abstract here):

    - ``decide(batch) -> {"llm": (B,) long, "utilities": (B, L), "confidence": (B,),
      "fallback": (B,) bool}`` (category routers add ``"category"`` (B,)): the routing decision,
      used by validation, by testing (``predict_step``) and by the routing API. ``utilities``
      follow the contract of ``router_lab.policy``.
    - ``training_step(batch, batch_idx)``: the loss (None for a non-parametric family).

    Given here (override when needed): ``__init__`` pieces (``init_pool``: ``data_info``,
    ``llm_names``, ``llm_costs``); ``validation_step`` = ``record_validation(batch,
    decide(batch))``; ``on_validation_epoch_end`` logs ``val/<metric>`` and ``val/score``
    (``score_metric`` when set and present, else the data's headline metric) through
    ``log_validation``; ``predict_step`` = the decisions as arrays (``train`` / ``eval`` call
    ``trainer.predict`` on the test sets and evaluate them with ``router_lab.evaluation``);
    ``configure_optimizers`` = AdamW with warm-up and linear decay from the hparams ``lr``
    (encoder), ``head_lr``, ``weight_decay`` and ``warmup_ratio``."""

    #: the validation metric ``val/score`` (checkpointing, early stopping) is; None: the headline one
    score_metric: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.validation_outputs: list[dict] = []

    def init_pool(self, data_info: Mapping[str, Any]) -> dict:
        """Keep ``data_info`` and the pool (``llm_names``, ``llm_costs``: 0 when unknown)."""
        self.data_info = info = dict(data_info)
        self.llm_names: list[str] = list(info["llm_names"])
        self.llm_costs = [float(c) for c in info.get("llm_costs") or [0.0] * len(self.llm_names)]
        return info

    def fit_datamodule(self, stage: str | None, who: str):
        """At ``setup("fit")``: check the training records have scores (one error line naming
        ``who``) and return the attached DataModule (None when not attached); at other stages
        None without checks."""
        if stage not in (None, "fit"):
            return None
        if not self.data_info.get("has_scores", True):
            raise UserError(f"data.train: {who} needs per-LLM scores on the training records; found none")
        return getattr(self.trainer, "datamodule", None) if self._trainer is not None else None

    def utility_decision(self, util: torch.Tensor, batch: Mapping[str, torch.Tensor],
                         cost_lambda: float | None = None, **extra) -> dict[str, torch.Tensor]:
        """``decide`` for utilities that estimate each LLM's score: ``policy.choose_llm`` with
        ``cost_lambda`` (default: the hparam) over the batch's costs (else the pool's);
        ``confidence`` = the chosen LLM's utility; never a fallback."""
        lam = self.hparams.get("cost_lambda") if cost_lambda is None else cost_lambda
        llm = choose_llm(util, batch_costs(batch, self.llm_costs, util), lam)
        return {"llm": llm, "utilities": util, "confidence": util.gather(1, llm[:, None]).squeeze(1),
                "fallback": torch.zeros_like(llm, dtype=torch.bool), **extra}

    @abstractmethod
    def decide(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The routing decision of a batch (class docstring)."""

    @abstractmethod
    def training_step(self, batch, batch_idx):
        """The training loss of a batch (None: no optimisation step)."""

    def validation_step(self, batch, batch_idx):
        self.record_validation(batch, self.decide(batch))

    def record_validation(self, batch: Mapping[str, torch.Tensor], decisions: Mapping[str, torch.Tensor]) -> None:
        """Keep a validation batch's decisions with its ground truth for the epoch's metrics."""
        self.validation_outputs.append(evaluation.decision_arrays(decisions) | evaluation.batch_truth(batch))

    def on_validation_epoch_end(self):
        self.log_validation()

    def log_validation(self, extra: Mapping[str, float] | None = None) -> dict:
        """Routing metrics of the epoch's validation outputs, logged as ``val/<metric>``, plus
        ``val/score``; clears the outputs."""
        outputs, self.validation_outputs = self.validation_outputs, []
        m = evaluation.routing_metrics(evaluation.concat(outputs)) if outputs else {}
        m.update(extra or {})
        for k, v in m.items():
            self.log(f"val/{k}", v)
        sm = self.score_metric
        self.log("val/score", m[sm] if sm and sm in m else evaluation.selection_score(m), prog_bar=True)
        return m

    # ---------------------------------------- per-LLM Platt calibration (RouterDC, RankRouter)
    def register_calibration(self) -> None:
        """Buffers ``calib_a``, ``calib_b``, ``calib_fitted`` of a per-LLM Platt calibration of
        the utilities (``policy.fit_platt``), refitted on each validation epoch
        (``keep_validation_batch`` + ``calibrate_on_validation``) and carried by checkpoints;
        checkpoints and exports from before calibration load uncalibrated."""
        n = len(self.llm_names)
        self.register_buffer("calib_a", torch.ones(n))
        self.register_buffer("calib_b", torch.zeros(n))
        self.register_buffer("calib_fitted", torch.zeros((), dtype=torch.bool))
        self.validation_logits: list[tuple[dict, torch.Tensor]] = []

    @torch.no_grad()
    def fit_platt_calibration(self, features: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> None:
        a, b = fit_platt(features.float(), scores, mask)
        self.calib_a.copy_(a)
        self.calib_b.copy_(b)
        self.calib_fitted.fill_(True)

    def keep_validation_batch(self, batch: Mapping[str, torch.Tensor], logits: torch.Tensor) -> None:
        keep = {k: v.detach() for k, v in batch.items() if isinstance(v, torch.Tensor) and k != "embedding"}
        self.validation_logits.append((keep, logits.detach()))

    def calibrate_on_validation(self, fit, decide) -> None:
        """Fit the calibration on the epoch's kept batches (``fit(logits, effective scores,
        mask)``), then record the calibrated decisions ``decide(logits, batch)``, so the
        validation metrics (and the checkpoint, which carries the buffers) match these weights."""
        if not self.validation_logits:
            return
        batches, logits = zip(*self.validation_logits)
        self.validation_logits = []
        eff = effective_batch_scores({k: torch.cat([b[k] for b in batches]) for k in ("scores", "is_probability")})
        fit(torch.cat(logits), eff, torch.cat([b["score_mask"] for b in batches]))
        for b, lg in zip(batches, logits):
            self.record_validation(b, decide(lg, b))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if hasattr(self, "calib_fitted"):  # saved before calibration existed: uncalibrated
            for name in ("calib_a", "calib_b"):
                state_dict.setdefault(prefix + name, getattr(self, name).clone())
            state_dict.setdefault(prefix + "calib_fitted", torch.zeros((), dtype=torch.bool))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0) -> dict:
        return evaluation.decision_arrays(self.decide(batch))

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_with_warmup(self, self.encoder, hp.lr, hp.head_lr, hp.weight_decay, hp.warmup_ratio,
                                 total_training_steps(self.trainer))


def batch_costs(batch: Mapping[str, torch.Tensor], llm_costs: list[float], like: torch.Tensor) -> torch.Tensor | None:
    """(B, L) per-query costs of the batch, else the pool's costs; None when all are zero."""
    if "costs" in batch:
        return batch["costs"].to(like.device)
    if not any(llm_costs):
        return None
    return torch.tensor(llm_costs, device=like.device, dtype=like.dtype).expand_as(like)


def effective_batch_scores(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(B, L) the score a user gets (``metrics.effective_scores``): probability rows binarised
    at > 0, multi_attempt rows raw; 0 where unscored (see ``score_mask``)."""
    scores = batch["scores"].float()
    prob = batch.get("is_probability")
    if prob is None:
        return scores
    return torch.where(prob.to(scores.device)[:, None].bool(), (scores > 0).float(), scores)
