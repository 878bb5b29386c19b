"""RankRouter: a capability-aware dual-tower router trained on pairwise preferences.

    python -m router_lab.train +experiment=rankrouter_arena data.train=/data/arena.parquet
    python -m router_lab.train +experiment=rankrouter_split2 [seed=1] [model.loss=bce]
    python -m router_lab.train model=rankrouter data=synthetic          # any score data

Query tower: the query embedding (frozen cache or fine-tuned encoder) concatenated with
cluster features -- one-hot nearest centroid or a soft assignment (softmax of minus the
squared distance to each of K centroids, in units of the training data's mean squared
distance to its nearest centroid) -- projected to ``embedding_dim``. The K-means centroids
are fitted at ``setup("fit")`` on the training queries only and kept as buffers, so a
checkpoint carries them. Model tower: per-LLM learnable capability vector (initialised from
each LLM's per-task mean training score with ``capability_init=profile``) concatenated
with a model-ID embedding, projected to ``embedding_dim``. Score(q, m) = dot or cosine of
the two towers' outputs, divided by ``temperature``.

Losses: ``bpr`` over the preference pairs of each batch (``router_lab.pairs``: every two
LLMs scored in a row; ties skipped or counted as half, ``tie_mode``), or ``bce`` pointwise
on the scores themselves (targets in [0, 1]; a 0.5/0.5 arena tie is its own target, so
``tie_mode`` does not apply). ``val/score`` is the validation pairwise AUC, so the best
checkpoint is chosen on it.

Fine-tune mode: K-means is fitted on the pre-trained encoder's training embeddings
(``encoders.embed_texts``, cached); as the encoder trains, its embeddings drift away from
those centroids, which is why cluster features are computed without gradient.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from router_lab.errors import UserError
from router_lab.losses import TIE_MODES, bce_pointwise_loss, bpr_loss
from router_lab.models.common import (
    RouterModule,
    check_choice,
    build_query_encoder,
    embed_batch,
    mlp,
)
from router_lab.pairs import preference_pairs

log = logging.getLogger(__name__)

SIMILARITIES = ("dot", "cosine")
LOSSES = ("bpr", "bce")
CLUSTER_FEATURES = ("onehot", "soft")
CAPABILITY_INITS = ("profile", "random")


def cluster_features(emb: torch.Tensor, centroids: torch.Tensor, valid: torch.Tensor, kind: str,
                     scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """(B, D) embeddings -> (B, K) features: one-hot nearest valid centroid, or the softmax
    over valid centroids of -squared distance / scale. Invalid centroids get 0."""
    d2 = torch.cdist(emb.float(), centroids.float()).pow(2)
    d2 = d2.masked_fill(~valid, float("inf"))
    if kind == "onehot":
        return F.one_hot(d2.argmin(-1), centroids.size(0)).to(emb.dtype)
    return torch.softmax(-d2 / scale, dim=-1).to(emb.dtype)


class RankRouter(RouterModule):
    score_metric = "auc"  # checkpoints are chosen on the validation pairwise AUC

    def __init__(
        self,
        data_info: Mapping[str, Any],
        encoder: Mapping[str, Any],
        embedding_dim: int = 512,
        query_hidden_dim: int = 0,
        dropout: float = 0.0,
        num_clusters: int = 50,
        cluster_features: str = "onehot",
        cluster_temperature: float = 1.0,
        kmeans_n_init: int = 3,
        kmeans_seed: int = 0,
        capability_init: str = "profile",
        capability_dim: int | None = None,
        model_id_dim: int = 64,
        similarity: str = "dot",
        temperature: float = 1.0,
        loss: str = "bpr",
        margin: float = 1.0,
        tie_mode: str = "skip",
        lr: float = 1e-4,
        head_lr: float = 1e-4,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.0,
        calibrate: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters()
        info = self.init_pool(data_info)
        # Per-LLM Platt calibration of the scores into score estimates (policy.fit_platt),
        # fitted on each validation epoch and carried by the checkpoint.
        self.register_calibration()
        self.encoder = build_query_encoder(encoder)
        dim = self.encoder.dim if self.encoder is not None else int(info["embedding_dim"])
        n_llms = len(self.llm_names)

        # Query tower. Centroids are fitted in setup("fit"); until then no centroid is valid.
        self.register_buffer("centroids", torch.zeros(max(num_clusters, 0), dim))
        self.register_buffer("centroid_valid", torch.zeros(max(num_clusters, 0), dtype=torch.bool))
        self.register_buffer("cluster_scale", torch.ones(()))
        self.query_tower = mlp(dim + max(num_clusters, 0), query_hidden_dim, embedding_dim, dropout)

        # Model tower.
        profile = self._profile()  # (L, T)
        cap_dim = capability_dim or (profile.shape[1] if capability_init == "profile" and profile.shape[1] else 32)
        capability = torch.randn(n_llms, cap_dim) * 0.02
        if capability_init == "profile" and cap_dim >= profile.shape[1]:
            capability[:, : profile.shape[1]] = torch.from_numpy(profile)
        self.capability = nn.Parameter(capability)
        self.model_id = nn.Embedding(n_llms, model_id_dim)
        nn.init.normal_(self.model_id.weight, std=0.02)
        self.model_tower = nn.Linear(cap_dim + model_id_dim, embedding_dim)

        self._val_loss: list[tuple[float, int]] = []

    # ------------------------------------------------------------------ set-up
    def _profile(self) -> np.ndarray:
        """(L, T) each LLM's mean training score per task."""
        rows = self.data_info.get("task_mean_scores") or []
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(self.llm_names)).T

    def check_settings(self) -> None:
        """Raise UserError (one line) for a bad model setting. Called from ``setup`` rather
        than ``__init__``: errors raised inside hydra.instantiate come out wrapped, and these
        must reach the user as one line."""
        hp = self.hparams
        for name, allowed in (("similarity", SIMILARITIES), ("loss", LOSSES), ("cluster_features", CLUSTER_FEATURES),
                              ("capability_init", CAPABILITY_INITS), ("tie_mode", TIE_MODES)):
            check_choice(name, hp[name], allowed)
        if hp.num_clusters < 0:
            raise UserError(f"model.num_clusters={hp.num_clusters}; expected 0 (no cluster features) or more")
        n_tasks = self._profile().shape[1]
        if hp.capability_init == "profile":
            if n_tasks == 0:
                raise UserError("model.capability_init=profile needs per-task training scores (the data has none); "
                                "expected score data or model.capability_init=random")
            if self.capability.size(1) < n_tasks:
                raise UserError(f"model.capability_dim={hp.capability_dim} is smaller than the {n_tasks} training "
                                "tasks the profile initialises it from; expected null or at least that")

    def setup(self, stage: str | None = None) -> None:
        self.check_settings()
        if stage not in (None, "fit"):
            return
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None or dm.train_set is None:
            return
        train = dm.train_set
        if not train.has_scores:
            raise UserError("data.train: RankRouter needs per-LLM scores or preference pairs; the training records "
                            "have none")
        scores = np.nan_to_num(train.scores)
        mask = ~np.isnan(train.scores)
        _, _, _, tie = preference_pairs(torch.from_numpy(scores), torch.from_numpy(mask))
        strict = int((~tie).sum())
        if strict == 0 and (self.hparams.tie_mode == "skip" or tie.numel() == 0):
            raise UserError(f"data.train: the {len(train)} training records give no preference pair "
                            f"({tie.numel()} pairs, all ties); expected at least two LLMs with different scores in a row")
        if self.hparams.loss == "bce" and (scores.max() > 1 or scores.min() < 0):
            raise UserError(f"model.loss=bce needs scores in [0, 1]; data.train has scores in "
                            f"[{scores.min():g}, {scores.max():g}] (use model.loss=bpr)")
        log.info("rankrouter: %d training pairs (%d ties, tie_mode=%s)", tie.numel(), int(tie.sum()),
                 self.hparams.tie_mode)
        self.fit_clusters(self._training_embeddings(dm))

    def _training_embeddings(self, dm) -> np.ndarray:
        if dm.train_set.embeddings is not None:
            return np.asarray(dm.train_set.embeddings)
        from router_lab.encoders import embed_texts

        return embed_texts(dm.train_set.texts, self.hparams.encoder, cache_dir=dm.cache_dir)

    @torch.no_grad()
    def fit_clusters(self, embeddings: np.ndarray) -> None:
        """K-means (seeded) on the training queries' embeddings; K clamped to their number."""
        k_max = self.centroids.size(0)
        if k_max == 0:
            return
        from sklearn.cluster import KMeans

        x = np.asarray(embeddings, dtype=np.float32)
        k = min(k_max, len(x))
        if k < k_max:
            log.warning("rankrouter: num_clusters=%d but only %d training queries; using %d clusters", k_max, len(x), k)
        km = KMeans(n_clusters=k, n_init=self.hparams.kmeans_n_init, random_state=self.hparams.kmeans_seed).fit(x)
        self.centroids.zero_()
        self.centroids[:k] = torch.from_numpy(km.cluster_centers_.astype(np.float32))
        self.centroid_valid.zero_()
        self.centroid_valid[:k] = True
        nearest = float(km.inertia_) / len(x)  # mean squared distance to the nearest centroid
        self.cluster_scale.fill_(max(nearest, 1e-6) * self.hparams.cluster_temperature)

    # ------------------------------------------------------------------ towers
    def query_vectors(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, embedding_dim): query embedding + cluster features, projected."""
        q = embed_batch(self.encoder, batch)
        if self.centroids.size(0):
            with torch.no_grad():
                c = cluster_features(q.detach(), self.centroids, self.centroid_valid, self.hparams.cluster_features,
                                     self.cluster_scale)
            q = torch.cat([q, c.to(q.dtype)], dim=-1)
        return self.query_tower(q)

    def model_vectors(self) -> torch.Tensor:
        """(L, embedding_dim): capability vector + model-ID embedding, projected."""
        return self.model_tower(torch.cat([self.capability, self.model_id.weight], dim=-1))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(B, L) query-LLM scores."""
        q, m = self.query_vectors(batch), self.model_vectors()
        if self.hparams.similarity == "cosine":
            q, m = F.normalize(q, dim=-1), F.normalize(m, dim=-1)
        return (q @ m.T) / self.hparams.temperature

    def decide(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``llm`` (B,) the best-utility LLM, ``utilities`` (B, L) the scores as score estimates
        (the utility contract of ``router_lab.policy``: [0, 1], higher is better):
        ``sigmoid(a_j * score + b_j)`` once calibrated (``calibrate``), else ``sigmoid(score)``;
        ``confidence`` (B,) the softmax share of the chosen LLM, ``fallback`` (B,) always False,
        ``logits`` the raw scores."""
        return self._decide(self(batch))

    def _decide(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        # float64: sigmoid saturates at |x| > 17 in float32, which would tie LLMs the scores order.
        z = logits.double()
        if bool(self.calib_fitted):
            z = self.calib_a.double() * z + self.calib_b.double()
        util = z.sigmoid()
        llm = util.argmax(-1)
        confidence = logits.float().softmax(-1).gather(1, llm[:, None]).squeeze(1)
        return {"llm": llm, "utilities": util, "logits": logits, "confidence": confidence,
                "fallback": torch.zeros_like(llm, dtype=torch.bool)}

    # ------------------------------------------------------------------ training
    def loss_from_logits(self, logits: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """(loss, number of pairs or scored entries it averages over)."""
        hp = self.hparams
        scores, mask = batch["scores"].float(), batch["score_mask"]
        if hp.loss == "bce":
            return bce_pointwise_loss(logits, scores, mask), int(mask.sum())
        row, pref, other, tie = preference_pairs(scores, mask)
        loss = bpr_loss(logits[row, pref], logits[row, other], hp.margin, tie, hp.tie_mode)
        return loss, int(row.numel() if hp.tie_mode == "half" else (~tie).sum())

    def training_step(self, batch, batch_idx):
        loss, n = self.loss_from_logits(self(batch), batch)
        bs = batch["scores"].size(0)
        self.log("train/loss", loss, prog_bar=True, batch_size=bs, on_step=True, on_epoch=True)
        self.log("train/pairs", float(n), batch_size=bs, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        if self.hparams.calibrate:
            self.keep_validation_batch(batch, logits)
        else:
            self.record_validation(batch, self._decide(logits))
        loss, n = self.loss_from_logits(logits, batch)
        if n:
            self._val_loss.append((float(loss), n))

    def on_validation_epoch_end(self):
        self.calibrate_on_validation(self.fit_platt_calibration, lambda logits, batch: self._decide(logits))
        extra = {}
        if self._val_loss:
            extra["loss"] = sum(l * n for l, n in self._val_loss) / sum(n for _, n in self._val_loss)
        self._val_loss = []
        self.log_validation(extra)
