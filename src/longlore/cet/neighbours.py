"""CET's neighbours: for each training question, the K most similar other training questions.

Similarity is the cosine of mean-pooled embeddings from the *frozen pretrained* encoder (the
paper's h0 space), computed once before fine-tuning and cached on disk. Two spaces:

* ``feature`` — the anchor's own input (question + gold option), as in the paper;
* ``answer`` — the gold answer text alone, the heuristic of the released code (which used spaCy
  word vectors; here the same frozen encoder embeds the answers).

A neighbour whose similarity is below theta is dropped, so an anchor may keep fewer than K (or no)
neighbours; the loss then falls back to plain cross-entropy for it.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from longlore.cet.data import MCQuestion
from longlore.core.io import atomic_write_bytes
from longlore.core.models import mean_pool


@dataclass(frozen=True)
class NeighbourTable:
    """``index[i, k]``: k-th nearest neighbour of question i (-1 if dropped); ``sim`` its cosine;
    ``mask`` where a neighbour exists. All three are (N, K)."""

    index: np.ndarray
    sim: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.index >= 0

    @property
    def coverage(self) -> float:
        """Fraction of anchors with at least one neighbour."""
        return float(self.mask.any(axis=1).mean()) if len(self.index) else 0.0


def find_neighbours(embeddings: np.ndarray, k: int, theta: float) -> NeighbourTable:
    """Exact K nearest neighbours by cosine similarity, excluding each row itself.

    Args:
        embeddings: (N, D) rows; they are L2-normalised here, so any scale works.
        k: neighbours per row (capped at N - 1).
        theta: neighbours with cosine similarity below theta are dropped (index -1).
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    n = emb.shape[0]
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(min=1e-12)
    sim = emb @ emb.T  # (N, N)
    np.fill_diagonal(sim, -np.inf)  # a question is not its own neighbour
    k_eff = max(0, min(k, n - 1))
    # stable sort on -sim: ties go to the lower index, so results are deterministic
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k_eff]  # (N, k_eff)
    top_sim = np.take_along_axis(sim, order, axis=1)
    index = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), np.nan, dtype=np.float32)
    keep = top_sim >= theta
    index[:, :k_eff] = np.where(keep, order, -1)
    sims[:, :k_eff] = np.where(keep, top_sim, np.nan)
    return NeighbourTable(index=index, sim=sims)


def shared_answer_share(table: NeighbourTable, questions: list[MCQuestion]) -> float:
    """Share of the table's existing (anchor, neighbour) pairs whose gold answer text is the
    anchor's (case-insensitive). CET scores a neighbour's question against the *anchor's* gold
    option, so this is the share of neighbour terms that teach a true fact; the rest are noise."""
    rows, cols = np.nonzero(table.mask)
    if len(rows) == 0:
        return float("nan")
    same = [
        questions[i].gold.strip().lower() == questions[table.index[i, k]].gold.strip().lower()
        for i, k in zip(rows, cols)
    ]
    return float(np.mean(same))


def neighbour_texts(questions: list[MCQuestion], space: str) -> list[str]:
    """What is embedded per question: question + gold answer (``feature``) or the answer (``answer``)."""
    if space == "feature":
        return [f"{q.question} {q.gold}" for q in questions]
    if space == "answer":
        return [q.gold for q in questions]
    raise ValueError(f"unknown neighbour space '{space}'; expected feature or answer")


@torch.no_grad()
def embed_texts(encoder: Any, tokenizer: Any, texts: list[str], max_len: int, batch_size: int = 128) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings from ``encoder`` as it is now (call it before training)."""
    was_training = encoder.training
    encoder.eval()
    device = next(encoder.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size], padding=True, truncation=True, max_length=max_len, return_tensors="pt"
        ).to(device)
        hidden = encoder(**batch).last_hidden_state  # (B, T, D)
        pooled = mean_pool(hidden, batch["attention_mask"]).float()  # numpy has no bfloat16
        out.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
    encoder.train(was_training)
    return torch.cat(out).numpy()


def _cache_key(encoder_id: str, texts: list[str], space: str, k: int, theta: float, max_len: int) -> str:
    payload = json.dumps(
        {"encoder": encoder_id, "space": space, "k": k, "theta": theta, "max_len": max_len, "texts": texts},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def build_neighbours(
    questions: list[MCQuestion],
    encoder: Any,
    tokenizer: Any,
    *,
    encoder_id: str,
    space: str,
    k: int,
    theta: float,
    max_len: int,
    cache_dir: Path | None = None,
) -> NeighbourTable:
    """Neighbour table of ``questions`` in the frozen encoder's space, read from / written to a cache.

    The cache file name hashes everything the table depends on (encoder id, texts, space, K, theta,
    max_len), so a changed setting never reuses a stale table.
    """
    texts = neighbour_texts(questions, space)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"cet_neighbours_{_cache_key(encoder_id, texts, space, k, theta, max_len)}.npz"
        if path.exists():
            with np.load(path) as data:
                return NeighbourTable(index=data["index"], sim=data["sim"])
    table = find_neighbours(embed_texts(encoder, tokenizer, texts, max_len), k, theta)
    if path is not None:
        buffer = io.BytesIO()
        np.savez(buffer, index=table.index, sim=table.sim)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buffer.getvalue(), overwrite=True)
    return table
