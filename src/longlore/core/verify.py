"""``longlore assets verify``: load every real asset offline and check it does its job."""

from __future__ import annotations

import os
from collections.abc import Callable

from longlore.core import assets
from longlore.core.errors import LongloreError


def _smollm2() -> str:
    from longlore.core.backends import GenerationRequest, HFTextModel

    model = HFTextModel.from_spec("smollm2-135m")
    answer = model.generate([GenerationRequest("The capital of France is", chat=False, max_new_tokens=8)])[0][0]
    if "Paris" not in answer:
        raise LongloreError(f"greedy completion {answer!r} lacks 'Paris'")
    return f"checksum ok; 'The capital of France is' -> {answer.strip()[:30]!r}"


def _embedder(spec: str) -> Callable[[], str]:
    def check() -> str:
        from longlore.core.models import load_embedder

        vectors = load_embedder(spec).embed(["a small cat", "a little kitten", "the stock market fell"])
        close, far = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
        if not close > far:
            raise LongloreError(f"cat~kitten {close:.2f} not above cat~stocks {far:.2f}")
        return f"dim {vectors.shape[1]}; cat~kitten {close:.2f} > cat~stocks {far:.2f}"

    return check


def _movielens() -> str:
    folder = assets.asset_path("movielens-100k")
    lines = (folder / "ml-100k.inter").read_text().splitlines()
    if not lines[0].startswith("user_id:token") or len(lines) - 1 != 100_000:
        raise LongloreError(f"{folder}/ml-100k.inter: unexpected header or {len(lines) - 1} rows")
    return f"{len(lines) - 1} ratings; files {', '.join(sorted(p.suffix for p in folder.iterdir()))}"


def _kg(name: str) -> Callable[[], str]:
    def check() -> str:
        folder = assets.asset_path(name)
        triples = [line.split("\t") for line in (folder / "train.txt").read_text().splitlines() if line]
        if not triples or any(len(t) != 3 for t in triples):
            raise LongloreError(f"{folder}/train.txt is not tab-separated triples")
        return f"{len(triples)} training triples"

    return check


def _kjv() -> str:
    from longlore.core.text import public_domain_text

    text = public_domain_text()
    if not text.startswith("In the beginning"):
        raise LongloreError("KJV excerpt does not start with Genesis 1:1")
    return f"{len(text):,} characters"


CHECKS: dict[str, Callable[[], str]] = {
    "smollm2-135m": _smollm2,
    "minilm": _embedder("minilm"),
    "e5-small": _embedder("e5-small"),
    "movielens-100k": _movielens,
    "kg-nations": _kg("kg-nations"),
    "kg-kinships": _kg("kg-kinships"),
    "kg-umls": _kg("kg-umls"),
    "kjv-excerpt": _kjv,
}


def verify_all() -> list[tuple[str, bool, str]]:
    """Run every check offline; ``(asset, ok, detail)`` rows."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    rows = []
    for name, check in CHECKS.items():
        try:
            rows.append((name, True, check()))
        except LongloreError as err:
            rows.append((name, False, str(err)))
        except Exception as err:
            rows.append((name, False, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
    return rows
