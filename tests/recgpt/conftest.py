"""A small seeded catalogue + log in RecBole atomic-file form, shared by the RecGPT tests."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

GENRES = ["Action", "Comedy", "Drama", "Sci-Fi", "Romance", "Thriller"]


def write_toy_atomic(folder: Path, n_users: int = 24, n_items: int = 40, seed: int = 0) -> Path:
    """Users prefer two genres; timestamps span ~14 months so every time bucket appears."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(1, n_items + 1):
        genres = rng.sample(GENRES, rng.choice([1, 2]))
        items.append((i, f"Film {i}", 1950 + i, genres))
    (folder / "toy.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "".join(f"{i}\t{t}\t{y}\t{' '.join(g)}\n" for i, t, y, g in items)
    )
    (folder / "toy.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
        + "".join(f"{u}\t{20 + u}\t{'MF'[u % 2]}\tstudent\t00000\n" for u in range(1, n_users + 1))
    )
    lines = []
    for u in range(1, n_users + 1):
        liked = set(rng.sample(GENRES, 2))
        pool = [i for i, _, _, g in items if liked & set(g)]
        t = 880_000_000 + rng.randint(0, 10**6)
        for _ in range(rng.randint(8, 14)):
            t += rng.randint(3_000, 3_000_000)
            lines.append(f"{u}\t{rng.choice(pool)}\t{rng.choice([2, 3, 4, 5, 5])}\t{t}\n")
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(lines))
    (folder / "dataset.json").write_text('{"domain": "movie"}')
    return folder


@pytest.fixture()
def toy_folder(tmp_path: Path) -> Path:
    return write_toy_atomic(tmp_path / "toy")


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory):
    from longlore.recgpt.data import load_dataset

    return load_dataset(write_toy_atomic(tmp_path_factory.mktemp("toy")))


@pytest.fixture(scope="session")
def movielens():
    """The real MovieLens-100k from the recbole wheel (loaded once)."""
    from longlore.recgpt.data import load_dataset

    return load_dataset("movielens-100k")


class HashEmbedder:
    """A deterministic bag-of-words embedder (crc32 buckets) so tests need no encoder."""

    name = "hash"

    def embed(self, texts, *, is_query=False):
        import zlib

        import numpy as np

        out = np.zeros((len(texts), 32), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, zlib.crc32(word.encode()) % 32] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)


@pytest.fixture(scope="session")
def hash_embedder():
    return HashEmbedder()
