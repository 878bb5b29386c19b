"""k-nearest-neighbours router (non-parametric): a query's predicted score for each LLM is
the weighted mean of that LLM's scores on the query's k nearest training queries in the
frozen-embedding space ("When Simple kNN Beats Complex Learned Routers", arXiv 2505.12601).

    python -m router_lab.train model=knn                                     # synthetic benchmark
    python -m router_lab.train model=knn data=split2 data.val=null           # split2, held-out validation
    python -m router_lab.train -m model=knn data.val=null model.k=5,10,20,50 model.weighting=uniform,distance

"Fitting" is one pass over the training loader that stores each query's cached embedding and
its per-LLM effective scores (probability rows binarised at > 0, as acc_predict counts them)
as buffers of the module, so the index travels in the checkpoint and in an export like any
weight. No optimiser: ``configure_optimizers`` returns None (Lightning then runs the loop
without one) and training stops after the first epoch. Validation, checkpointing on
``val/score`` and testing are the common ones, so sweeps over ``k``/``weighting`` select on
the validation split only. Never validate on the training data (split2's paper protocol
``data.val=train``): every query is its own nearest neighbour there.

Search is exact: batched matmul + top-k over index chunks of ``chunk_size`` rows (a running
top-k merge keeps memory at batch x chunk), fine on CPU up to a few hundred thousand items.
For millions, ``KNNRouter.search`` is the one function to replace: build a FAISS index over
``index_embeddings`` once after fitting (``faiss.IndexFlatIP`` on normalised vectors for
cosine / ``IndexFlatL2`` exact, or ``IndexHNSWFlat`` / ``IndexIVFPQ`` approximate, trained on
the same buffer) and return ``index.search(queries, k)`` as (distances, ids); everything after
the search (weights, per-LLM score estimates, the decision) is unchanged.

Decisions: ``utilities`` are the per-LLM predicted scores; with ``cost_lambda`` the choice is
argmax of ``cost_lambda * utility - cost`` (``choose_llm``, the rule every family and the
serving policy use), otherwise argmax of the utility.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from router_lab.encoders import EncoderSpec
from router_lab.errors import UserError
from router_lab.models.common import RouterModule, check_choice, embed_batch, effective_batch_scores

WEIGHTINGS = ("uniform", "distance")
METRICS = ("cosine", "l2")
#: the index buffers, sized by the training data (resized when a state dict is loaded)
INDEX_BUFFERS = ("index_embeddings", "index_scores", "index_mask")

log = logging.getLogger(__name__)


class KNNRouter(RouterModule):
    def __init__(
        self,
        data_info: Mapping[str, Any],
        encoder: Mapping[str, Any],
        k: int = 20,
        weighting: str = "distance",
        metric: str = "cosine",
        chunk_size: int = 16384,
        cost_lambda: float | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        info = self.init_pool(data_info)
        check_choice("weighting", weighting, WEIGHTINGS)
        check_choice("metric", metric, METRICS)
        if int(k) < 1:
            raise UserError(f"model.k={k}; expected a positive number of neighbours")
        self.spec = EncoderSpec.from_config(encoder)
        self.encoder = None  # non-parametric over the frozen-embedding cache: nothing to fine-tune
        dim, n_llms = int(info["embedding_dim"]), len(self.llm_names)
        self.register_buffer("index_embeddings", torch.zeros(0, dim))
        self.register_buffer("index_scores", torch.zeros(0, n_llms))
        self.register_buffer("index_mask", torch.zeros(0, n_llms, dtype=torch.bool))
        self._parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    # ------------------------------------------------------------------ checks
    def setup(self, stage: str | None = None) -> None:
        # Here rather than in __init__: errors inside hydra.instantiate come out wrapped.
        if stage in (None, "fit") and not self.spec.frozen:
            raise UserError("model=knn searches the frozen-embedding cache; set encoder.frozen=true "
                            "(got encoder.frozen=false)")
        dm = self.fit_datamodule(stage, "the kNN router")
        n = len(dm.train_set) if dm is not None and getattr(dm, "train_set", None) is not None else None
        if n is not None:
            self._check_k(n, "data.train")
            if getattr(dm, "val_spec", None) == "train":
                log.warning("model=knn validates on its own training queries (data.val=train): each is its own "
                            "nearest neighbour, so val/score is optimistic and cannot choose k; use data.val=null")

    def _check_k(self, n: int, where: str) -> None:
        if self.hparams.k > n:
            raise UserError(f"model.k={self.hparams.k} is larger than the {n} training queries in {where}; "
                            f"expected model.k <= {n}")

    # ------------------------------------------------------------------ index
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The index buffers are as large as the training data: take the stored shapes.
        for name in INDEX_BUFFERS:
            t = state_dict.get(prefix + name)
            if t is not None:
                setattr(self, name, torch.empty_like(t, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_index(self, embeddings: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> None:
        """Store the training queries: (N, D) embeddings, (N, L) effective scores, (N, L) mask."""
        emb = embeddings.detach().float()
        if self.hparams.metric == "cosine":
            emb = F.normalize(emb, dim=-1)
        self._check_k(emb.size(0), "the index")
        self.index_embeddings = emb
        self.index_scores = torch.where(mask, scores.detach().float(), torch.zeros_like(scores, dtype=torch.float))
        self.index_mask = mask.detach().bool()

    @property
    def index_size(self) -> int:
        return int(self.index_embeddings.size(0))

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact k-NN: (B, k) distances (cosine: 1 - cos; l2: Euclidean) and (B, k) index rows,
        nearest first. Chunked over the index with a running top-k merge; the one function to
        replace with a FAISS index for millions of items (module docstring)."""
        q = queries.float()
        cosine = self.hparams.metric == "cosine"
        if cosine:
            q = F.normalize(q, dim=-1)
        else:
            q_sq = (q * q).sum(-1, keepdim=True)
        best_s = best_i = None
        for start in range(0, self.index_size, int(self.hparams.chunk_size)):
            x = self.index_embeddings[start:start + int(self.hparams.chunk_size)]
            # similarity (higher = nearer): cos, or -squared distance
            s = q @ x.T if cosine else -(q_sq - 2 * q @ x.T + (x * x).sum(-1)[None, :])
            top_s, top_i = s.topk(min(k, s.size(1)), dim=-1)
            top_i = top_i + start
            if best_s is not None:
                top_s, sel = torch.cat([best_s, top_s], 1).topk(k, dim=-1)
                top_i = torch.cat([best_i, top_i], 1).gather(1, sel)
            best_s, best_i = top_s, top_i
        dist = 1.0 - best_s if cosine else (-best_s).clamp_min(0).sqrt()
        return dist, best_i

    def predict_scores(self, queries: torch.Tensor) -> torch.Tensor:
        """(B, L) per-LLM predicted score: the weighted mean of the neighbours' scores of each
        LLM (over neighbours that have a score for it; the LLM's index mean if none does)."""
        if self.index_size == 0:
            raise RuntimeError("the kNN index is empty: fit the router (python -m router_lab.train model=knn) first")
        k = int(self.hparams.k)
        self._check_k(self.index_size, "the index")
        dist, idx = self.search(queries, k)
        w = torch.ones_like(dist) if self.hparams.weighting == "uniform" else 1.0 / (dist + 1e-6)
        s, m = self.index_scores[idx], self.index_mask[idx].float()  # (B, k, L)
        num = (w[..., None] * s * m).sum(1)
        den = (w[..., None] * m).sum(1)
        prior = self.index_scores.sum(0) / self.index_mask.float().sum(0).clamp_min(1)
        return torch.where(den > 0, num / den.clamp_min(1e-12), prior.expand_as(num))

    # ------------------------------------------------------------------ routing
    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.predict_scores(embed_batch(self.encoder, batch))

    def decide(self, batch: Mapping[str, torch.Tensor], cost_lambda: float | None = None) -> dict[str, torch.Tensor]:
        """``llm`` (B,), ``utilities`` (B, L) = predicted scores, ``confidence`` (B,) = the
        chosen LLM's predicted score, ``fallback`` (B,) all False."""
        return self.utility_decision(self(batch), batch, cost_lambda)

    # ------------------------------------------------------------------ "training"
    def on_train_epoch_start(self):
        self._parts = []

    def training_step(self, batch, batch_idx):
        """Add the batch to the index; no loss (returning None skips the optimisation step)."""
        self._parts.append((embed_batch(self.encoder, batch).detach(), effective_batch_scores(batch),
                            batch["score_mask"].bool()))

    def on_validation_epoch_start(self):
        # Validation runs at the end of the training epoch, before on_train_epoch_end.
        if self._parts:
            emb, scores, mask = (torch.cat(x) for x in zip(*self._parts))
            self._parts = []
            self.set_index(emb, scores, mask)

    def on_train_epoch_end(self):
        if self._parts:  # no validation loop ran (limit_val_batches=0)
            self.on_validation_epoch_start()
        self.trainer.should_stop = True  # one pass stores the index; more epochs would add nothing

    def configure_optimizers(self):
        return None  # nothing to optimise
