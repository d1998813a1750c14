"""Text distributions for the probe, cut into equal-length token windows.

Every distribution is a list of documents split once into a training and a held-out part (by
document, so no held-out window shares text with a training window). A sample is a window of
exactly ``length`` tokens of the decoder's tokenizer taken from the documents of one part, joined
by blank lines: prose, Chinese, code and math thus differ in content, not in length.

Built-in distributions (all offline):

* ``prose`` — the King James Bible excerpt shipped with longlore (public domain), one chapter per document;
* ``chinese`` — ChineseEcomQA questions with their reference answers, records that are mostly Chinese
  characters (real Chinese e-commerce text, from
  ``$LONGLORE_BENCH_DATA`` or ``../shared/data/benchmarks``), else the seeded e-commerce world's Chinese
  product descriptions (synthetic); the results record which source was used;
* ``code`` — the Python standard library's own top-level modules, one file per document;
* ``math`` — reasoning-gym ``gsm_symbolic`` problems with their worked solutions;
* ``random`` — tokens drawn uniformly from the vocabulary (special tokens excluded).

A folder of the user's own ``.txt`` files (one document each) and ``.jsonl`` files (one document
per record, field ``text``) is one more distribution, named after the folder.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longlore.core.errors import LongloreError
from longlore.core.io import iter_jsonl_numbered

BUILTIN_DISTRIBUTIONS = ("prose", "chinese", "code", "math", "random")
HELD_OUT_SHARE = 0.25  # share of each distribution's documents kept for evaluation
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class Sample:
    """One equal-length window: the distribution it came from and its token ids."""

    distribution: str
    ids: list[int]
    index: int  # position in its distribution's held-out list (or the training draw number)


def _held_out(key: str) -> bool:
    # A stable per-document hash: the split never depends on the order documents are listed in.
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF < HELD_OUT_SHARE


def _find_bench_data() -> Path | None:
    repo = Path(__file__).resolve().parents[3]
    for candidate in (
        os.environ.get("LONGLORE_BENCH_DATA"),
        Path.cwd().parent / "shared" / "data" / "benchmarks",
        repo.parent / "shared" / "data" / "benchmarks",
    ):
        if candidate and (Path(candidate) / "chineseecomqa" / "ChineseEcomQA.jsonl").exists():
            return Path(candidate)
    return None


def prose_documents() -> list[str]:
    from longlore.core.text import public_domain_text

    return [p.strip() for p in public_domain_text().split("\n\n") if p.strip()]


def chinese_documents() -> tuple[list[str], str]:
    """Chinese documents and a description of their source."""
    root = _find_bench_data()
    if root is not None:
        path = root / "chineseecomqa" / "ChineseEcomQA.jsonl"
        docs = []
        for _, record in iter_jsonl_numbered(path):
            question = re.sub(r"\*\*\*[^*]+\*\*\*[:：]?", "", str(record.get("prompt", ""))).strip()
            doc = f"{question}{str(record.get('gt', '')).strip()}"
            # Some records are JSON purchase histories; keep the ones that are mostly Chinese prose.
            if len(_CJK.findall(doc)) >= 0.5 * len("".join(doc.split())):
                docs.append(doc)
        return docs, f"ChineseEcomQA questions + reference answers, records >= 50% CJK ({path.name})"
    from longlore.core.text import EcomWorld

    world = EcomWorld.generate(0)
    return [world.describe(p, "zh") for p in world.products], "EcomWorld(seed 0) Chinese product descriptions"


def code_documents() -> list[str]:
    folder = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(folder.glob("*.py"))
    if not files:
        raise LongloreError(f"no Python standard-library sources found under {folder}")
    return [f.read_text(encoding="utf-8", errors="replace") for f in files]


def math_documents(n: int = 1500, seed: int = 17) -> list[str]:
    try:
        import reasoning_gym
    except ImportError:
        raise LongloreError("the math distribution needs reasoning-gym: pip install reasoning-gym") from None
    data = reasoning_gym.create_dataset("gsm_symbolic", size=n, seed=seed)
    return [f"{x['question']}\n{x['metadata'].get('answer_cot', x['answer'])}" for x in data]


def folder_documents(folder: str | Path) -> list[str]:
    """A user's folder: each ``.txt`` file is one document, each ``.jsonl`` record's ``text`` another."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LongloreError(f"{folder}: not a folder; pass a folder of .txt and/or .jsonl files")
    docs = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".txt":
            docs.append(path.read_text(encoding="utf-8", errors="replace"))
        elif path.suffix == ".jsonl":
            for line_no, record in iter_jsonl_numbered(path):
                if not isinstance(record.get("text"), str):
                    raise LongloreError(f"{path}:{line_no}: field 'text' (a string) is missing")
                docs.append(record["text"])
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise LongloreError(f"{folder}: no .txt files or .jsonl records with a 'text' field found")
    return docs


class Distributions:
    """Token streams of each distribution's training and held-out documents, for one tokenizer."""

    def __init__(self, tokenizer: Any, folders: dict[str, str | Path] | None = None) -> None:
        self.tokenizer = tokenizer
        self.folders = {name: Path(path) for name, path in (folders or {}).items()}
        clash = set(self.folders) & set(BUILTIN_DISTRIBUTIONS)
        if clash:
            raise LongloreError(f"user distribution name(s) {sorted(clash)} clash with built-in ones; rename them")
        self.sources: dict[str, str] = {}
        self._streams: dict[tuple[str, bool], list[int]] = {}
        special = set(tokenizer.all_special_ids)
        self._random_vocab = [i for i in range(len(tokenizer)) if i not in special]

    @property
    def names(self) -> list[str]:
        return list(BUILTIN_DISTRIBUTIONS) + list(self.folders)

    def _documents(self, name: str) -> list[str]:
        if name == "prose":
            self.sources[name] = "King James Bible excerpt (public domain), chapters"
            return prose_documents()
        if name == "chinese":
            docs, self.sources[name] = chinese_documents()
            return docs
        if name == "code":
            self.sources[name] = f"Python {sysconfig.get_python_version()} standard library, top-level modules"
            return code_documents()
        if name == "math":
            self.sources[name] = "reasoning-gym gsm_symbolic problems + worked solutions (seed 17)"
            return math_documents()
        if name in self.folders:
            self.sources[name] = f"user folder {self.folders[name]}"
            return folder_documents(self.folders[name])
        raise LongloreError(f"unknown distribution '{name}'; expected one of: {', '.join(self.names)}")

    def stream(self, name: str, held_out: bool) -> list[int]:
        """All token ids of one part of a distribution, documents joined by a blank line."""
        key = (name, held_out)
        if key not in self._streams:
            docs = self._documents(name)
            part = [d for i, d in enumerate(docs) if _held_out(f"{name}:{i}:{d[:64]}") == held_out]
            if not part:
                raise LongloreError(f"distribution '{name}': too few documents to split ({len(docs)})")
            sep = self.tokenizer("\n\n", add_special_tokens=False)["input_ids"]
            ids: list[int] = []
            for doc in part:
                ids += self.tokenizer(doc, add_special_tokens=False)["input_ids"] + sep
            self._streams[key] = ids
        return self._streams[key]

    def held_out(self, name: str, n: int, length: int, seed: int = 0) -> list[Sample]:
        """``n`` non-overlapping held-out windows of ``length`` tokens, in a seeded order of all windows: the
        first ``n`` of a larger request are these ``n``, with the same indices (a study can grow or shrink)."""
        rng = random.Random(f"held-out:{name}:{seed}")
        if name == "random":
            self.sources[name] = f"uniform over {len(self._random_vocab)} non-special token ids"
            return [Sample(name, [rng.choice(self._random_vocab) for _ in range(length)], i) for i in range(n)]
        stream = self.stream(name, held_out=True)
        slots = len(stream) // length
        if slots < n:
            raise LongloreError(
                f"distribution '{name}': held-out text has {len(stream)} tokens, room for {slots} windows of "
                f"{length}; ask for at most {slots} samples or shorter windows"
            )
        order = list(range(slots))
        rng.shuffle(order)
        return [Sample(name, stream[s * length : (s + 1) * length], i) for i, s in enumerate(order[:n])]

    def training_window(self, name: str, length: int, rng: random.Random) -> list[int]:
        """One training window of ``length`` tokens at a random offset (windows may overlap)."""
        if name == "random":
            return [rng.choice(self._random_vocab) for _ in range(length)]
        stream = self.stream(name, held_out=False)
        if len(stream) <= length:
            raise LongloreError(f"distribution '{name}': training text has only {len(stream)} tokens (< {length})")
        start = rng.randrange(0, len(stream) - length)
        return stream[start : start + length]
