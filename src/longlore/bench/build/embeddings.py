"""Sentence embeddings for the construction pipelines, cached on disk so a rerun does not redo them.

``auto`` picks the embedder the papers' setting calls for: MiniLM for English text, e5-small
(multilingual) for Chinese. Vectors are L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from longlore.core.io import atomic_write_bytes
from longlore.core.models import Embedder, load_embedder


def embedder_for(spec: str, language: str) -> str:
    """The embedder spec to use: ``auto`` -> ``minilm`` (en) or ``e5-small`` (zh)."""
    if spec == "auto":
        return "e5-small" if language == "zh" else "minilm"
    return spec


class CachedEmbedder:
    """An :class:`Embedder` whose vectors are kept in ``folder/embeddings-<name>.npz`` by text.

    Texts are embedded symmetrically (e5's ``query:`` prefix on both sides, as e5 advises for
    similarity between short phrases); ``is_query`` is accepted for interface compatibility.
    """

    def __init__(self, spec: str, folder: str | Path | None = None, embedder: Embedder | None = None) -> None:
        self.name = spec
        self._embedder = embedder
        safe = hashlib.sha1(spec.encode()).hexdigest()[:8]
        self.path = Path(folder) / f"embeddings-{Path(spec).name}-{safe}.npz" if folder else None
        self._cache: dict[str, np.ndarray] = {}
        if self.path is not None and self.path.exists():
            data = np.load(self.path, allow_pickle=False)
            self._cache = dict(zip(data["texts"].tolist(), data["vectors"]))

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = load_embedder(self.name)
        return self._embedder

    def embed(self, texts: list[str], *, is_query: bool = True) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = self.embedder.embed(missing, is_query=True)
            self._cache.update(zip(missing, np.asarray(vectors, dtype=np.float32)))
            self._save()
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def _save(self) -> None:
        if self.path is None:
            return
        import io

        texts = list(self._cache)
        buffer = io.BytesIO()
        np.savez(buffer, texts=np.array(texts), vectors=np.stack([self._cache[t] for t in texts]))
        atomic_write_bytes(self.path, buffer.getvalue(), overwrite=True)
