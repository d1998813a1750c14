"""Taggers: a plain encoder tagger, a two-head multi-task tagger and the LST-NER model.

Notation for shapes: B batch, T sub-tokens, D encoder width, L target labels (IOB2, with ``O``),
S source labels, K entity types (for the auxiliary multi-label task).

Every tagger scores a token against label embeddings, ``logits = H E^T + b``; this is an ordinary
linear head, written so that LST-NER can use the same embeddings as label-graph nodes (and,
optionally, start the target head at ``E_t = P E_s``, see ``LSTNERConfig.head_init``).

LST-NER (Zheng et al., Findings ACL 2022; the layer formulas are our reading, marked in
METHODS.md as unverified):
  1. label-guided attention: each label node attends over the sentence's tokens and pulls a
     label component ``C = softmax(E W_q (H W_k)^T / sqrt(D)) H``                    (B, L, D)
  2. GCN over the label graph: ``X = (E + C) + ReLU(A_hat (E + C) W_g)``           (B, L, D)
  3. token-guided attention: each token attends over the label nodes and adds the result
     back, ``H' = H + softmax(H W_q' (X W_k')^T / sqrt(D)) X W_o``                 (B, T, D)
     with ``W_o`` zero-initialised so training starts from the plain tagger.
  4. auxiliary head: which entity types occur in the sentence, from mean-pooled ``H'``.
  5. graph matching: the entropic GW distance between the source graph and the target graph
     whose node features are the *fused* label nodes ``X`` (mean over the batch), so its
     gradient reaches the GCN, both attentions, the label embeddings and the encoder; see
     :meth:`LSTNERModel.gw_loss`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from longlore.core.devices import module_device_dtype
from longlore.lstner.config import LSTNERConfig
from longlore.lstner.graph import normalize_adjacency
from longlore.lstner.gw import cosine_cost, entropic_gw


def source_node_features(label_emb: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
    """(S, D) source-graph node features: the source head's label embeddings after one
    parameter-free GCN propagation over the source label graph, ``A_hat E_s``. The source side
    of GW is a fixed reference; propagating over its edges is what lets the source graph's
    structure (not only its embeddings) shape the geometry GW compares."""
    return normalize_adjacency(adj) @ label_emb


class LabelHead(nn.Module):
    """``logits = H E^T + b`` over a label set; ``E`` (L, D) doubles as label embeddings."""

    def __init__(self, n_labels: int, dim: int) -> None:
        super().__init__()
        self.label_emb = nn.Parameter(torch.randn(n_labels, dim) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_labels))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.label_emb.T + self.bias  # (B, T, L)


class Tagger(nn.Module):
    """A BERT-family encoder with one label head (the source tagger and the plain baselines)."""

    def __init__(self, encoder: nn.Module, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.n_labels = n_labels
        self.dropout = nn.Dropout(dropout)
        self.head = LabelHead(n_labels, encoder.config.hidden_size)
        self._follow_encoder()

    def _follow_encoder(self) -> None:
        """Put every module and buffer this tagger adds on the encoder's device and dtype."""
        device, dtype = module_device_dtype(self.encoder)
        self.to(device=device, dtype=dtype)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return self.dropout(out.last_hidden_state)  # (B, T, D)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(input_ids, attention_mask))  # (B, T, L)


class MultiTaskTagger(Tagger):
    """Shared encoder, a target head (``head``) and a source head trained on source batches."""

    def __init__(self, encoder: nn.Module, n_labels: int, n_source_labels: int, dropout: float = 0.1) -> None:
        super().__init__(encoder, n_labels, dropout)
        self.source_head = LabelHead(n_source_labels, encoder.config.hidden_size)
        self._follow_encoder()

    def source_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.source_head(self.encode(input_ids, attention_mask))  # (B, T, S)


class LabelGraphFusion(nn.Module):
    """Label-guided attention -> GCN over the label graph -> token-guided attention (see module doc)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = 1.0 / math.sqrt(dim)
        self.label_q, self.token_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.gcn = nn.Linear(dim, dim)
        self.token_q, self.label_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        # Zero output projection: at step 0 the fused model equals the plain tagger, so the few
        # target sentences refine a working model instead of first undoing random noise.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor, label_emb: torch.Tensor, adj_hat: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused token states (B, T, D) and the label nodes after the GCN (B, L, D)."""
        # 1. label-guided attention: scores (B, L, T), padding masked out.
        scores = (self.label_q(label_emb) @ self.token_k(hidden).transpose(1, 2)) * self.scale
        scores = scores.masked_fill(~mask[:, None, :].bool(), torch.finfo(scores.dtype).min)
        comp = torch.softmax(scores, dim=-1) @ hidden  # (B, L, D) label components
        nodes = label_emb[None] + comp  # (B, L, D)
        # 2. one GCN layer with a residual, A_hat (L, L) broadcast over the batch.
        nodes = nodes + torch.relu(adj_hat @ self.gcn(nodes))  # (B, L, D)
        # 3. token-guided attention over the label nodes: (B, T, L).
        att = torch.softmax((self.token_q(hidden) @ self.label_k(nodes).transpose(1, 2)) * self.scale, dim=-1)
        return hidden + self.out(att @ nodes), nodes  # (B, T, D), (B, L, D)


class LSTNERModel(Tagger):
    """LST-NER: a target tagger fused with the target label graph and matched to the source graph.

    Buffers (saved with the model): ``adj`` (L, L) the target graph's edge weights that the GCN
    runs on (the label-distribution graph, or an ablation's identity / shuffled graph) and
    ``adj_hat`` its normalised adjacency with self-loops; ``source_cost`` (S, S) the source
    graph's intra-graph cost used by the GW term; ``label_dist`` (L, S) the label distributions
    the model was built from.
    """

    def __init__(
        self, encoder: nn.Module, n_labels: int, n_types: int, n_source_labels: int, config: LSTNERConfig
    ) -> None:
        super().__init__(encoder, n_labels, config.dropout)
        dim = encoder.config.hidden_size
        self.config = config
        self.fusion = LabelGraphFusion(dim) if config.use_graph else None
        self.aux_head = nn.Linear(dim, n_types)
        self.register_buffer("adj", torch.zeros(n_labels, n_labels))  # raw edge weights, zero diagonal
        self.register_buffer("adj_hat", torch.eye(n_labels))
        self.register_buffer("source_cost", torch.zeros(n_source_labels, n_source_labels))
        self.register_buffer("label_dist", torch.full((n_labels, n_source_labels), 1.0 / n_source_labels))
        self._follow_encoder()

    def fused(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token states after the label-graph fusion (B, T, D) and the fused label nodes (B, L, D)
        (``None`` without a fusion module)."""
        hidden = self.encode(input_ids, attention_mask)  # (B, T, D)
        if self.fusion is None:
            return hidden, None
        return self.fusion(hidden, attention_mask, self.head.label_emb, self.adj_hat)

    def forward_all(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Token logits (B, T, L), auxiliary type logits (B, K) and the fused label nodes (B, L, D)."""
        hidden, nodes = self.fused(input_ids, attention_mask)
        m = attention_mask[..., None].to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, D) mean over real tokens
        return self.head(hidden), self.aux_head(pooled), nodes

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.forward_all(input_ids, attention_mask)[0]

    def target_cost(self, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """(L, L) intra-graph cost of the target graph: the cosine cost of its node features.

        The node features are the fused label nodes ``nodes`` (B, L, D) averaged over the batch
        (the GCN output, which depends on the label embeddings, both attentions and the encoder);
        without a fusion module, the head's label embeddings.
        """
        features = nodes.mean(0) if nodes is not None else self.head.label_emb  # (L, D)
        return cosine_cost(features)

    def gw_loss(self, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """Entropic GW distance between the source graph (fixed reference) and the target graph
        built from ``nodes``, the fused label nodes of the current batch (see :meth:`target_cost`)."""
        cfg = self.config
        target = self.target_cost(nodes).float()  # the unrolled solver runs in float32 under any dtype
        dist, _ = entropic_gw(
            self.source_cost.float(),
            target,
            eps=cfg.gw_eps,
            outer_iters=cfg.gw_outer_iters,
            sinkhorn_iters=cfg.gw_sinkhorn_iters,
        )
        return dist
