"""Hybrid retrieval over a corpus for the fact check of ``build-qa``: BM25 (``bm25s``) and
sentence embeddings, fused by reciprocal rank (RRF, k = 60).

Tokens for BM25: lower-cased words and numbers for English; for Chinese, which has no spaces,
character unigrams and bigrams (the usual segmenter-free choice), plus any Latin words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
_CJK = re.compile(r"[\u3400-\u9fff]+")
RRF_K = 60


def is_chinese(text: str) -> bool:
    """True when CJK characters make up at least a fifth of the letters."""
    cjk = sum(len(m) for m in _CJK.findall(text))
    return cjk > 0 and cjk >= 0.2 * max(len(re.sub(r"\s", "", text)), 1)


def tokenize(text: str) -> list[str]:
    """BM25 tokens: words/numbers, and CJK unigrams + bigrams."""
    lowered = text.lower()
    tokens = _WORD.findall(lowered)
    for run in _CJK.findall(lowered):
        tokens += list(run) + [run[i : i + 2] for i in range(len(run) - 1)]
    return tokens


class HybridRetriever:
    """BM25 + embedding retrieval over fixed passages; :meth:`search` returns fused rankings."""

    def __init__(self, passages: Sequence[str], embedder: Any | None = None) -> None:
        import bm25s

        self.passages = list(passages)
        self.bm25 = bm25s.BM25()
        self.bm25.index([tokenize(p) or ["<empty>"] for p in self.passages], show_progress=False)
        self.embedder = embedder
        self.vectors = np.asarray(embedder.embed(self.passages)) if embedder is not None else None

    def bm25_ranking(self, query: str) -> list[int]:
        tokens = tokenize(query) or ["<empty>"]
        k = len(self.passages)
        docs, scores = self.bm25.retrieve([tokens], k=k, show_progress=False)
        return [int(d) for d, s in zip(docs[0], scores[0]) if s > 0]

    def dense_ranking(self, query: str) -> list[int]:
        if self.vectors is None:
            return []
        q = np.asarray(self.embedder.embed([query]))[0]
        return [int(i) for i in np.argsort(-(self.vectors @ q), kind="stable")]

    def search(self, query: str, k: int = 3) -> list[dict[str, Any]]:
        """Top ``k`` passages: ``{"index", "score" (RRF), "bm25_rank", "dense_rank"}`` (ranks 1-based)."""
        fused: dict[int, float] = {}
        ranks: dict[str, dict[int, int]] = {}
        for name, ranking in (("bm25_rank", self.bm25_ranking(query)), ("dense_rank", self.dense_ranking(query))):
            ranks[name] = {doc: r for r, doc in enumerate(ranking, start=1)}
            for doc, r in ranks[name].items():
                fused[doc] = fused.get(doc, 0.0) + 1.0 / (RRF_K + r)
        top = sorted(fused, key=lambda d: (-fused[d], d))[:k]
        return [
            {
                "index": d,
                "score": round(fused[d], 6),
                "bm25_rank": ranks["bm25_rank"].get(d),
                "dense_rank": ranks["dense_rank"].get(d),
            }
            for d in top
        ]
