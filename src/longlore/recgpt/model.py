"""The user-item-tag three-tower retriever (RecGPT §5): y_col = h_u . h_v, y_sem = h_t . h_v.

User tower: user id + user features + mean of the embeddings of the last L items before the
prediction point. Item tower: item id + genres + KG attributes. Tag tower: a frozen sentence
encoder's embedding of the tag text (MiniLM by default) through an MLP, so free-text LLM tags at
serving time land in the same space as the descriptor tags seen in training. All three outputs
are L2-normalised; scores are cosines.

Shapes: B batch, L history length, D tower size, E text-embedding size, G genres, A attributes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, 2 * d_out), nn.GELU(), nn.Linear(2 * d_out, d_out))


class ThreeTower(nn.Module):
    """Item indices run 0..n_items-1; index ``n_items`` pads histories and attribute bags."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_user_feats: int,
        item_genres: torch.Tensor,
        item_attrs: torch.Tensor,
        n_attrs: int,
        text_dim: int,
        dim: int = 64,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.user_emb = nn.Embedding(n_users, dim)
        self.user_feat = nn.EmbeddingBag(n_user_feats + 1, dim, mode="mean", padding_idx=n_user_feats)
        self.hist_emb = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
        self.user_mlp = _mlp(3 * dim, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        self.register_buffer("item_genres", item_genres.float())  # (N, G) multi-hot
        self.register_buffer("item_attrs", item_attrs)  # (N, max attrs) padded with n_attrs
        self.genre_proj = nn.Linear(item_genres.shape[1], dim)
        self.attr_emb = nn.EmbeddingBag(n_attrs + 1, dim, mode="mean", padding_idx=n_attrs)
        self.item_mlp = _mlp(3 * dim, dim)
        self.tag_mlp = _mlp(text_dim, dim)
        for emb in (self.user_emb, self.hist_emb, self.item_emb):
            nn.init.normal_(emb.weight, std=0.05)

    def user(self, users: torch.Tensor, feats: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        """users (B,), feats (B, F) padded, history (B, L) padded item indices -> (B, D)."""
        mask = (history != self.n_items).unsqueeze(-1).float()  # (B, L, 1)
        pooled = (self.hist_emb(history) * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, D)
        x = torch.cat([self.user_emb(users), self.user_feat(feats), pooled], dim=-1)  # (B, 3D)
        return F.normalize(self.user_mlp(x), dim=-1)

    def item(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """items (C,) -> (C, D); all items when None."""
        if items is None:
            items = torch.arange(self.n_items, device=self.item_emb.weight.device)
        x = torch.cat(
            [self.item_emb(items), self.genre_proj(self.item_genres[items]), self.attr_emb(self.item_attrs[items])],
            dim=-1,
        )  # (C, 3D)
        return F.normalize(self.item_mlp(x), dim=-1)

    def tag(self, text_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, E) frozen sentence embeddings of tag texts -> (B, D)."""
        return F.normalize(self.tag_mlp(text_embeddings), dim=-1)


def fuse(y_col: torch.Tensor, y_sem: torch.Tensor | None, beta: float) -> torch.Tensor:
    """Serving score y = b * y_col + (1 - b) * y_sem (y_col alone when the user has no tags)."""
    return y_col if y_sem is None else beta * y_col + (1.0 - beta) * y_sem
